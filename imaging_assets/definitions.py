"""The code location: the three wings (jump, stacks, frames) merged with the shared resources.

An explicit merge rather than `load_from_defs_folder`: the image installs the package without its
pyproject.toml (which that loader needs to find the project), and each wing stays a plain
`Definitions` that tests and tools can load on its own. `dg check defs` and `dg list defs` load
this module (pyproject's [tool.dg]).
"""

from dagster import Definitions

from imaging_assets.defs import frames, jump, stacks
from imaging_assets.defs.common.resources import default_resources

defs = Definitions.merge(
    jump.definitions.defs,
    stacks.definitions.defs,
    frames.definitions.defs,
    Definitions(resources=default_resources()),
)
