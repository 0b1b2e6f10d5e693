"""The kubernetes cluster: a job becomes a ConfigMap, Services and a StatefulSet of worker pods.

See :mod:`twister2.resource.kubernetes.objects` for the objects,
:mod:`twister2.resource.kubernetes.launcher` for how they are created, followed and deleted, and
:mod:`twister2.resource.kubernetes.pod` for a worker pod's entry point. The official
``kubernetes`` client is needed only when a job is submitted (``pip install 'twister2[k8s]'``).

>>> from twister2.resource import available_launchers
>>> "kubernetes" in available_launchers()
True
"""

from twister2.resource.base import register_launcher
from twister2.resource.kubernetes.launcher import KubernetesHandle, KubernetesLauncher
from twister2.resource.kubernetes.objects import PodJob, job_objects

__all__ = ["KubernetesHandle", "KubernetesLauncher", "PodJob", "job_objects"]

register_launcher("kubernetes", KubernetesLauncher)
