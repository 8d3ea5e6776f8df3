"""`python -m permisos_runner`: one attempt of one PermitRequest, exit code 0/3/4."""

from permisos_runner.runner import main

raise SystemExit(main())
