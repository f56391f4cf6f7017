"""verify: workloads, the training harness, the run store, the studies and the claims table.

Importing the package registers the studies (``verify.studies``: names and lazy targets only, nothing heavy), so a
run config can validate every study's section and ``spectral-edge claims`` knows every provider.
"""

import verify.studies  # noqa: F401 - registration lines only (module docstring)
