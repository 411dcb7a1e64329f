"""coursekit: release, autograde and give feedback on Jupyter assignments."""
import sys

# jsonschema (through nbformat) builds about 40 parsers for IRI formats when it is first
# imported, 3 s per process; notebooks never use those formats, so it is told that the
# optional package is absent. Every grading worker process gains those 3 s.
sys.modules.setdefault("rfc3987_syntax", None)
