"""The PPO agents of train_ppo.py as schemes (a scheme module for `scheme_modules`); train first."""

from mecmodel.agents import register_agent

for K in (1, 4):
    register_agent(
        f"ppo_k{K}",
        load="examples/rl/train_ppo.py:load_policy",
        weights=f"results/rl/ppo_K{K}.zip",
        description=f"PPO (Stable-Baselines3) on the centralised view, trained at K = {K} on fresh seeds >= 2**32",
    )
