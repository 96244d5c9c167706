"""Run the command line with ``python -m mailer``."""

from mailer.cli import main

main()
