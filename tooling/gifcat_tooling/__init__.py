"""gifcat's tooling: the CLI, evaluation, calibration, the report and the local embedded AWS.
Installed with the local/dev extras; never part of the Lambda layer or the image."""
