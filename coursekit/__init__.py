"""coursekit: release, autograde and give feedback on Jupyter assignments."""
