#!/usr/bin/env bash
# Writes a kubeconfig for the provisioner's ServiceAccount (deploy/rbac.yaml), for the mooseherd
# agent that runs on the host (not in a pod). Run it where kubectl reaches the cluster as an admin,
# then copy the file to /etc/mooseherd/kubeconfig (mode 0600) on every master candidate:
#
#   kubectl apply -f deploy/rbac.yaml
#   deploy/kubeconfig.sh > kubeconfig && scp kubeconfig pi1:/etc/mooseherd/kubeconfig
#
# The token is a long-lived ServiceAccount token Secret (works on every Kubernetes version; delete
# the Secret `mooseherd-provisioner-token` to revoke it, then run this again).
set -euo pipefail
ns=mooseherd
sa=mooseherd-provisioner
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: ${sa}-token
  namespace: ${ns}
  annotations:
    kubernetes.io/service-account.name: ${sa}
type: kubernetes.io/service-account-token
YAML
token=""
for _ in $(seq 1 30); do
  token=$(kubectl -n "$ns" get secret "${sa}-token" -o jsonpath='{.data.token}' 2>/dev/null | base64 -d || true)
  [ -n "$token" ] && break
  sleep 1
done
[ -n "$token" ] || { echo "kubeconfig.sh: no token in secret ${ns}/${sa}-token after 30 s" >&2; exit 1; }
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: cluster
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: ${sa}
  user:
    token: ${token}
contexts:
- name: ${sa}
  context: {cluster: cluster, user: ${sa}}
current-context: ${sa}
KC
