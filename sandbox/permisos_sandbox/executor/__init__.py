"""The local Job executor: what a cluster's Job controller, scheduler, kubelet and TTL controller
do, for this one machine, as a client of any Kubernetes API server (the sandbox emulator here).

    python -m permisos_sandbox.executor --kubeconfig var/kubeconfig [--namespace NS]
        [--max-pods N] [--image NAME=ARGV ...] [--env NAME=VALUE ...] [--workdir DIR]
        [--backoff-seconds S]

or, in code, ``async with JobExecutor(kubeconfig, max_pods=2, images={...}): ...``.
Settings also come from the environment, prefix ``PERMISOS_EXECUTOR_`` (``KUBECONFIG``,
``NAMESPACE``, ``MAX_PODS``, ``WORKDIR``, ``EXTRA_ENV`` as a JSON object, ``BACKOFF_SECONDS``,
``LOG_LEVEL``, ``LOG_FORMAT``); flags win. Logs are JSON lines (``permisos.logs``).

What it does (batch/v1 and core/v1 semantics, the field names and reasons of Kubernetes 1.31):

- **Job controller** (``jobcontroller.py``, ``jobstatus.py``). Watches Jobs (one namespace or
  all). Creates pods ``<job>-<5 chars>`` from the template with the Job's labels
  (``batch.kubernetes.io/job-name``, ``job-name``, ``batch.kubernetes.io/controller-uid``,
  ``controller-uid``), a controller owner reference with ``blockOwnerDeletion``, the finalizer
  ``batch.kubernetes.io/job-tracking`` and ``spec.nodeName`` = ``permisos-local``. Writes
  ``status``: ``startTime``, ``active``, ``ready``, ``terminating``, ``succeeded``, ``failed``,
  ``uncountedTerminatedPods``, ``completionTime`` and the conditions: ``SuccessCriteriaMet`` then
  ``Complete`` (reason ``CompletionsReached``), or ``FailureTarget`` then ``Failed`` with
  ``BackoffLimitExceeded`` ("Job has reached the specified backoff limit") or
  ``DeadlineExceeded`` ("Job was active longer than specified deadline"). ``backoffLimit``
  (a new pod per failure, after 10 s doubling, ``--backoff-seconds``), ``parallelism`` and
  ``completions`` (NonIndexed), ``activeDeadlineSeconds`` (the Job's running pods are deleted,
  so the kubelet kills them) and ``suspend``. A pod deleted before it succeeded counts as
  failed at once (``podReplacementPolicy: TerminatingOrFailed``) and keeps its finalizer until
  the kubelet has stopped it, so it shows as Terminating meanwhile, as in kube (the emulator
  itself has no graceful deletion). Posts the controller's Events.
- **Scheduler and kubelet** (``kubelet.py``). Runs the pods bound to ``permisos-local``, at
  most ``max_pods`` at once (default: the CPU count); the rest stay ``Pending`` with
  ``PodScheduled=False, reason Unschedulable`` and start first come, first served. Each
  container is a local process in its own process group (``process.py``): stdout and stderr go
  to ``<workdir>/logs/<ns>_<pod>_<uid>/<container>.log`` (its path is logged). Status is
  patched like the kubelet's: ``Pending`` (``ContainerCreating``, ``CreateContainerConfigError``,
  ``ErrImagePull``/``ImagePullBackOff``), ``Running`` with ``startedAt``, then ``Succeeded`` or
  ``Failed`` with ``state.terminated`` (``exitCode``; 128+n for a signal; reason ``Completed``
  or ``Error``; the termination message), ``startTime``, ``hostIP``/``podIP`` 127.0.0.1 and the
  conditions. A pod deleted while it runs, or past its own ``activeDeadlineSeconds`` (pod phase
  ``Failed``, reason ``DeadlineExceeded``), is killed: SIGTERM to the group, SIGKILL after its
  ``terminationGracePeriodSeconds`` (default 30, at most 30 here).
- **TTL controller** (``ttl.py``). ``ttlSecondsAfterFinished`` after ``Complete``/``Failed``,
  re-reads the Job and deletes it with ``propagationPolicy: Foreground``, as kube's does; the
  API server's garbage collector removes its pods first.

Containers without images (``podfiles.py``): the command is the container's ``command`` +
``args`` when it has a ``command``; otherwise the image's (``images``: repository name -> argv,
looked up by the full reference, the repository without tag, without registry, and its last
segment; ``args`` are appended). ``permisos/browser-runner`` and ``permisos-browser-runner``
map to ``python -m permisos_runner`` in the CLI. An image with no mapping is ``ErrImagePull``,
then ``ImagePullBackOff``. Each pod gets a private directory ``<workdir>/pods/<uid>`` (0700):

- Secret and ConfigMap volumes are written there (directories 0700, files with the owner's bits
  of ``defaultMode``/``mode``, so 0600 by default and never group- or world-readable; ``items``
  honoured), emptyDir volumes are empty directories, the termination-message file is created
  empty. A missing Secret, ConfigMap or key that is not ``optional`` leaves the container
  ``Waiting``: ``CreateContainerConfigError`` for ``env``/``envFrom`` (kubelet's messages:
  ``secret "x" not found``, ``couldn't find key k in Secret ns/x``), ``ContainerCreating`` with a
  ``FailedMount`` Event for volumes; it is retried (1 s doubling to 10 s), so a Secret created
  late is picked up.
- Container paths are mounted "at the same paths" by rewriting: an ``env`` value, ``command`` or
  ``args`` word that equals a volumeMount's ``mountPath`` (or lies under it), or the container's
  ``terminationMessagePath``, becomes the local directory or file (after kube's ``$(VAR)``
  expansion). ``HOME`` and ``TMPDIR`` are the pod's ``/tmp`` emptyDir when it mounts one, else a
  scratch directory. The process sees only ``PATH`` (and ``LANG``/``LC_ALL``), ``HOME``,
  ``TMPDIR``, ``HOSTNAME``, the executor's ``extra_env`` and the container's own environment
  (``valueFrom`` ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``), never the executor's.
- The termination message is the file's first 4096 bytes; with ``FallbackToLogsOnError`` and a
  failed container, the last 80 lines (2 KiB) of its log when the file is empty.
- The directory, with whatever came from a Secret, is removed as soon as the pod's containers
  end; Secret contents are never logged nor put in an Event.

Start and stop. ``start()`` lists Jobs and pods and takes the world as it is: a pod bound to
this node that is ``Running`` (or being deleted) but has no process here, because the executor
that ran it is gone, is marked ``Failed`` with its container ``terminated``, exit code 137,
reason ``ContainerStatusUnknown``, "The container could not be located when the pod was
terminated" (the kubelet's words for a lost container); the Job controller then counts it as a
failure like any other. Pending pods are started. Leftover pod files of a given ``workdir``, and
the temporary workdirs of executors that died, are removed. ``stop()`` stops creating pods,
SIGTERMs every container (SIGKILL after at most 5 s), reports those pods ``Failed`` with reason
``Terminated`` and a ``DisruptionTarget`` condition (the kubelet's graceful node shutdown), and
removes every pod directory (and the workdir if it made it; a given workdir keeps its logs). On
Linux each container also gets SIGKILL should the executor die (``PR_SET_PDEATHSIG``).

Robustness: watches resume from their last resourceVersion and relist on 410 Gone or any error;
Job status writes carry the resourceVersion they were decided on and are redone on a conflict;
one pod's or Job's failure is logged and retried, never fatal. One executor per cluster.

Not done: Indexed Jobs (run as NonIndexed), init containers (``CreateContainerConfigError``),
container restarts (every pod runs as ``restartPolicy: Never``), pod failure and success
policies, resource limits, probes, ``readOnly`` mounts (the files are the pod's own), volume
types other than Secret, ConfigMap and emptyDir, and ``pods/log`` (read the log file).
"""

from permisos_sandbox.node.images import DEFAULT_IMAGES, RUNNER_ARGV

from .executor import JobExecutor
from .settings import NODE_NAME

__all__ = ["DEFAULT_IMAGES", "NODE_NAME", "RUNNER_ARGV", "JobExecutor"]
