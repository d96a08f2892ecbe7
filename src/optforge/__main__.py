"""``python -m optforge``: the ``optforge`` command line."""

from optforge.cli import main

if __name__ == "__main__":
    main()
