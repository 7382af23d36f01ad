"""Simulations reproducing the FedUP paper's experiments on Flower's simulation engine.

Data loading (:mod:`simulations.data`), models (:mod:`simulations.models`),
attacks (:mod:`simulations.attacks`) and local training
(:mod:`simulations.training`) live here; the Flower apps build on them.
"""
