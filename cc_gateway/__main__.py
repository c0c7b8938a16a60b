"""Allow `python -m cc_gateway`."""

from cc_gateway.cli import main

if __name__ == "__main__":
    main()
