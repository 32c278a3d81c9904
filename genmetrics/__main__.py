"""``python -m genmetrics`` runs the command line."""

from genmetrics.cli import main

if __name__ == "__main__":
    main()
