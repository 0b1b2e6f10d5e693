"""A job whose last worker raises (for CLI failure tests)."""

import twister2
from tests.jobs import raise_in_last, sigkill_last

if __name__ == "__main__":
    import sys

    twister2.run(sigkill_last if "--sigkill" in sys.argv else raise_in_last, workers=2)
