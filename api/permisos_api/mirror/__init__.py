"""The phase mirror: each PermitRequest's state, written into the API's database.

The applicant sees progress in their application's row, and the history (`permit_history`)
outlives the PermitRequest. A loop inside the API process, beside the outbox dispatcher, watches
the PermitRequests of the API's namespace (`loop.py`), reads each version's state
(`snapshot.py`) and writes it idempotently (`store.py`). It holds the finalizer
`permisosdigitales.mx/record-outcome`, which the dispatcher creates each PermitRequest with, so
a deleted request goes only once its final state is in the database. Any number of API replicas
may run it: the writes are idempotent and the finalizer changes are guarded by resourceVersion.

The API app runs it as a background task when `PERMISOS_API_MIRROR_ENABLED` is true.
"""

from .loop import Mirror, MirrorMetrics
from .snapshot import Snapshot, snapshot_of, transition_time
from .store import record

__all__ = ["Mirror", "MirrorMetrics", "Snapshot", "record", "snapshot_of", "transition_time"]
