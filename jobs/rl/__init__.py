"""Reinforcement learning from human feedback: our own PPO, reward sources, preference data and spec checks.

``ppo`` holds the algorithm's math (pure torch, no TRL: TRL removed its PPOTrainer); ``trainer`` the rollout
and update loop around a language model; ``rewards`` the reward sources; ``preferences`` the preference pairs
for the reward and DPO jobs; ``checks`` the refusals made before a job is queued (no heavy imports there).
"""
