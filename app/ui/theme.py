"""Look of the app: the stylesheet, installed by the page-load script together with the key listener.

Gradio 6 takes CSS only through `launch()`; installing it from the page-load script keeps
`build_web_app(runtime)` self-contained, so whoever launches the Blocks (the CLI, a test, a notebook) gets the same
app.
"""

from __future__ import annotations

import json

CSS = """
.rise-header { display: flex; align-items: baseline; gap: 12px; }
.rise-header h1 { margin: 0; font-size: 1.5rem; white-space: nowrap; }
.rise-brand-sub { color: var(--body-text-color-subdued); font-size: 0.9rem; }
.rise-muted { color: var(--body-text-color-subdued); }
.rise-card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 14px;
  background: var(--block-background-fill); display: flex; flex-direction: column; gap: 6px; }
.rise-card-top { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.rise-pill { border-radius: 999px; padding: 2px 10px; font-size: 0.8rem;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.rise-confidence { border-radius: 999px; padding: 2px 10px; font-size: 0.8rem; font-weight: 600; }
.rise-confidence-low { background: #fde2e1; color: #9b1c1c; }
.rise-confidence-medium { background: #fef3c7; color: #92400e; }
.rise-confidence-high { background: #dcfce7; color: #166534; }
.rise-confidence-none { background: #e5e7eb; color: #374151; }
.rise-file { font-family: var(--font-mono); font-size: 0.8rem; color: var(--body-text-color-subdued);
  overflow-wrap: anywhere; }
.rise-answer, .rise-query, .rise-model { overflow-wrap: anywhere; }
.rise-empty { font-size: 1.05rem; padding: 24px; text-align: center; }
.rise-cot { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.92rem; line-height: 1.45;
  max-height: 260px; overflow-y: auto; padding: 10px 12px; border-radius: 8px;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.rise-cot-title { font-weight: 600; font-size: 0.85rem; margin-bottom: 4px; }
.rise-parse-error { color: #b91c1c; font-size: 0.85rem; margin-top: 6px; }
.rise-raw { white-space: pre-wrap; overflow-wrap: anywhere; font-family: var(--font-mono); font-size: 0.8rem;
  padding: 6px 8px; border-radius: 6px; background: var(--background-fill-secondary); margin-top: 4px; }
.rise-legend { font-size: 0.82rem; display: flex; flex-direction: column; gap: 4px; }
.rise-legend-row { display: flex; flex-wrap: wrap; gap: 4px 14px; }
.rise-kbd { display: inline-block; min-width: 1.4em; padding: 0 5px; border-radius: 4px; text-align: center;
  font-family: var(--font-mono); font-size: 0.78rem; border: 1px solid var(--border-color-primary);
  border-bottom-width: 2px; background: var(--background-fill-primary); }
.rise-slide[hidden] { display: none !important; }
.rise-stage-image { display: block; max-width: 100%; height: auto; margin: 0 auto; }
.rise-pixelated { image-rendering: pixelated; }
.rise-stage-missing { padding: 24px; text-align: center; }
.rise-status { font-size: 0.88rem; min-height: 1.3em; }
.rise-progress-caption { font-size: 0.9rem; margin-bottom: 4px; }
.rise-progress-track { height: 10px; border-radius: 5px; background: var(--background-fill-secondary);
  border: 1px solid var(--border-color-primary); overflow: hidden; }
.rise-progress-fill { height: 100%; background: var(--color-accent); }
.rise-stat-row { display: flex; flex-wrap: wrap; gap: 10px; }
.rise-stat { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 8px 14px; min-width: 110px;
  background: var(--block-background-fill); }
.rise-stat-value { font-size: 1.35rem; font-weight: 700; }
.rise-stat-label { font-size: 0.8rem; color: var(--body-text-color-subdued); }
#review-accept { background: #16a34a; color: white; border-color: #15803d; }
#review-correct { background: #2563eb; color: white; border-color: #1d4ed8; }
#review-reject { background: #dc2626; color: white; border-color: #b91c1c; }
#login-box { max-width: 420px; margin: 40px auto; }
"""


def style_installer_js() -> str:
    """A JS statement that adds the stylesheet to the page once."""
    return (
        "if (!document.getElementById('rise-style')) {"
        " const style = document.createElement('style'); style.id = 'rise-style';"
        f" style.textContent = {json.dumps(CSS)}; document.head.appendChild(style); }}"
    )
