"""Repository-root conftest.

The plugin itself loads through its pytest11 entry point (``pip install -e .``), so nothing is
registered here: registering it twice would be an error. This file only keeps pytest away from
paths that are not tests.
"""

collect_ignore = ["docker", ".trt-cache", "build"]
