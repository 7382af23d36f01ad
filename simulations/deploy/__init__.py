"""Run FedUP on a real local Flower deployment and check that it unlearned.

``make deploy-demo`` runs ``python -m simulations.deploy``. It checks that
``FEDUP_DATA_DIR`` holds the dataset, starts one ``flower-superlink`` and four
``flower-supernode`` processes on 127.0.0.1 (partition ``i`` on SuperNode
``i``; partition 0 is the label-flipping client), submits the project's Flower
app with ``flwr run`` and the run config ``overrides="+experiment=deploy"``,
streams the ServerApp's log and checks from it that

* FedUP flagged and unlearned the node of partition 0 in round T, and
* that node never trained again in a later round (it stays excluded).

``--tls-auth`` does the same over TLS with SuperNode authentication: it makes a
CA, a server certificate for 127.0.0.1/localhost and one key pair per
SuperNode in a temporary folder, checks that the SuperLink refuses a
plain-text connection, registers the four public keys with
``flwr supernode register``, shows that a SuperNode with an unregistered key
is refused, and restarts the flagged SuperNode after it was flagged: the
restarted process must come back under the same node id and stay excluded.
``--restart-flagged`` does that restart in plain mode too (where, without
authentication, the restarted SuperNode gets a new node id and the check
fails). ``--identity-probe`` only restarts one SuperNode, without a run, and
prints the node ids it got. ``--prepare DIR`` only writes the certificates,
keys, app copy and CLI config of the manual walk-through in
``docs/deploying.md``; ``--check-tls HOST:PORT`` only checks that a running
SuperLink refuses plain text.

Every process the demo starts is stopped by its process id before it exits,
also on failure or timeout. Exit status 0: every check passed; 1: a check
failed or the deployment did not come up in time (the logs are kept and their
folder is printed).

Modules, one job each: :mod:`~simulations.deploy.common` (settings, error,
output), :mod:`~simulations.deploy.processes` (start, wait for and stop
processes), :mod:`~simulations.deploy.certificates` (TLS material and the TLS
check), :mod:`~simulations.deploy.environment` (the processes' environment
and data folder), :mod:`~simulations.deploy.packaging` (the app copy and the
CLI's connection), :mod:`~simulations.deploy.deployment` (SuperLink and
SuperNodes), :mod:`~simulations.deploy.demo` (the modes),
:mod:`~simulations.deploy.checks` (the verdict from the logs) and
:mod:`~simulations.deploy.cli` (the command line).
"""
