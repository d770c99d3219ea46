"""`python -m qstore_server --data-dir DIR --port N`: the same as `qstore serve`."""
import argparse
import sys

from .cli import add_serve_arguments, run_serve

parser = argparse.ArgumentParser(prog="python -m qstore_server", description="Run the Q-Store server.")
add_serve_arguments(parser)
sys.exit(run_serve(parser.parse_args()))
