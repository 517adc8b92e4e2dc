"""`python -m app` is the same as the `rise` command."""

from app.cli import main

if __name__ == "__main__":
    main()
