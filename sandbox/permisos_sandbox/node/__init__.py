"""The node agent: the kubelet of this one machine, which has no container runtime.

It registers a Node, keeps its Lease, runs the containers of the pods the real scheduler binds
to it as local processes (an image map gives each image's command), reports their status
through the API and serves the kubelet's log endpoint. See docs/node-agent.md.
"""
