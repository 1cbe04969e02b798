"""Operating a stack from the shell: what its results say (summary, show), a person's answer
(corrections), and classifying again (rerun, redrive, backfill). The `gifcat` commands of
`gifcat_tooling.cli.stack` call these; each works on AWS or the local embedded AWS alike."""
