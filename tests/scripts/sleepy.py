"""A job that runs until it is killed (for `twister2 kill` tests)."""

import twister2
from tests.jobs import sleep_forever

if __name__ == "__main__":
    twister2.run(sleep_forever, workers=2)
