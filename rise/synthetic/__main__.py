"""Regenerate the demo assets (images + manifest.json) exactly.

python -m rise.synthetic --out assets/demo --n 36 --n-mood 120 --seed 0
"""

from __future__ import annotations

import argparse

from rise.synthetic.demo import MOOD_IMAGES, load_manifest, write_demo_assets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rise.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="assets/demo", help="folder for images/ and manifest.json")
    parser.add_argument("--n", type=int, default=36, help="number of images")
    parser.add_argument("--n-mood", type=int, default=MOOD_IMAGES, help="images of the mood project")
    parser.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same files")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    args = parser.parse_args(argv)
    manifest_path = write_demo_assets(args.out, n_images=args.n, seed=args.seed, size=args.size, n_mood=args.n_mood)
    manifest = load_manifest(manifest_path)
    counts = ", ".join(f"{p['name']} ({len(p['items'])} items)" for p in manifest["projects"])
    print(f"Wrote {manifest_path}: {counts}")


if __name__ == "__main__":
    main()
