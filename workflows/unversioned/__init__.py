"""The three workflows for unversioned workers (no WORKER_DEPLOYMENT_NAME): the same code without a versioning behavior.

The SDK sends a type's declared behavior with every workflow task it completes, and the server refuses a behavior
from a worker outside a Worker Deployment ("versioning behavior cannot be specified without deployment options"),
failing the task forever. So an unversioned worker registers these subclasses, which add nothing but the
undeclared behavior (service/plugin.py picks one set or the other).

Each lives in a module of its own (agent_loop.py, black_box.py, hybrid.py), and this one stays empty: a new
sandbox (every run a worker starts, or takes back into its cache) imports the module of the class it runs. With
one module for all three, every run executed all three workflows' code (bench/sandbox_start.py measures it).
"""
