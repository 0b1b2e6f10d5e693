"""``python -m twister2.worker``: one worker process of a job (started by a launcher)."""

import sys

from twister2.worker.bootstrap import main

sys.exit(main())
