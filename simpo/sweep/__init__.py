"""`simpo sweep`: a study grid or a hyperparameter search, run as Ray Tune trials (issue 8).

    simpo sweep --param algo=simpo,sac --param agent.weighting=exp,square --out sweeps/s1 --total-steps 100000
    simpo sweep --space space.yaml --num-samples 8 --asha --out sweeps/s2 --env Hopper-v5
    simpo sweep --study mujoco --address auto --gpus-per-trial 0.25 --out /shared/sweeps/mujoco

Every trial is a normal `simpo train` run (`simpo.train.train`) with its own run directory, OUT/runs/NAME.
Flags this module does not know are `simpo train` flags, shared by every trial (the base config); a trial's
parameters are applied on top of them, by the same parser (`simpo.cli.parse_config`), so every value is
checked like a `simpo train` flag. A trial follows its own metrics.csv and reports each evaluation to Tune
(`eval_return_mean` at `env_step`); when a new orbax checkpoint appears it also reports a tiny Tune
checkpoint that records the run directory and step. When a trial's worker or node dies, Tune's fault
tolerance (`--max-failures`) restarts the trial with that checkpoint, and the trial resumes its run
exactly (`train(config, resume=True)`). On a cluster, OUT must be on storage that every node can reach.

Search spaces (`--param NAME=V1,V2` is a grid; a YAML file, `--space`, maps dotted names to values)::

    algo: [simpo, sac]                          # a list: grid over these values
    agent.num_candidates: {choice: [8, 16]}     # sampled --num-samples times, like uniform/loguniform/randint
    agent.actor_lr: {loguniform: [1.0e-4, 1.0e-3]}
    seed: {grid: [0, 1, 2]}
    total_steps: 200000                         # a scalar: fixed for every trial
"""

from simpo.sweep.run import SweepConfig, parse_args, plan, run_sweep

__all__ = ["SweepConfig", "parse_args", "plan", "run_sweep"]
