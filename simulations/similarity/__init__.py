"""Measure the benign clients' similarity per round (issue 11): runner and table.

``python -m simulations.similarity.run`` trains each setting with FedAvg while
the attackers attack, recording every similarity measure of
:mod:`fedup_flwr.similarity` on the benign replies each round;
:mod:`simulations.similarity.table` turns the raw files into the docs' table,
the resulting pruning rates and the plot.
"""
