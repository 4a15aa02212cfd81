"""A stand-in for a real Kubernetes cluster (no kube-apiserver can run here): an HTTPS API
server the official client talks to, and a test kubelet that boots a real test host per pod."""
