"""Studies (issue 6): named grids env × reward transform × algorithm/scheme × seeds, their runner, and the
rliable aggregation of any tree of run directories.

    simpo study --list
    simpo study bandits
    simpo study reward-landscape --budget 10000 --seeds 0 1 --preset fast
    simpo study aggregate runs/study/reward-landscape
"""

from simpo.study.aggregate import aggregate
from simpo.study.runner import run_study
from simpo.study.specs import STUDIES, Arm, Cell, Study, cells, get_study

__all__ = ["STUDIES", "Arm", "Cell", "Study", "aggregate", "cells", "get_study", "run_study"]
