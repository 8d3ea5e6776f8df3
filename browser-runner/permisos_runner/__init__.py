"""The browser-runner: one pod, one attempt of one PermitRequest against the government portal.

`python -m permisos_runner` is the pod (`pod.py`); `runner.run_attempt` is one attempt in a
launched browser. Nothing is imported here, so the pod's entry point decides what loads when.
"""
