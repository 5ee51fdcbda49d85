#!/usr/bin/env bash
# Installs the real components of the local stack into a cache outside the repo, keyed by
# version, from package registries only (Go module proxy, Maven Central, PyPI).
# Each step is a no-op when its output is already cached. Usage: install.sh [component...]
set -euo pipefail

# Under root the cache must be readable by the unprivileged user that runs Elasticsearch.
if [ "$(id -u)" = 0 ]; then CACHE="${CIS_CACHE:-/var/cache/cis}"; else CACHE="${CIS_CACHE:-$HOME/.cache/cis}"; fi
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
ES_VERSION="${ES_VERSION:-8.19.21}"
# Filebeat 9.3.0 (beats main, 2025-10-31): the only recent beats revision the module proxy serves.
BEATS_VERSION="${BEATS_VERSION:-v7.0.0-alpha2.0.20251031181001-be9871f5dab9}"
VK_VERSION="${VK_VERSION:-v1.13.0}"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() { printf 'install: %s: %s failed\n' "$1" "$2" >&2; exit 1; }
have() { [ -x "$1" ] && { printf '    cached: %s\n' "$1" >&2; return 0; }; return 1; }

# run COMPONENT STEP CMD... : runs a command, naming component and step on failure
run() { local c=$1 s=$2; shift 2; "$@" || fail "$c" "$s"; }

install_k8s() {
  local dir="$CACHE/k8s-$K8S_VERSION" minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local staging="v0.${K8S_VERSION#v1.}"
  if have "$dir/bin/kube-apiserver" && have "$dir/bin/kubectl" && have "$dir/bin/kube-scheduler" && have "$dir/bin/kube-controller-manager"; then return; fi
  step "kubernetes $K8S_VERSION: building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (cold: ~15 min)"
  rm -rf "$dir/src"; mkdir -p "$dir/src" "$dir/bin"; cd "$dir/src"
  run kubernetes "go mod init" go mod init local/kbins
  run kubernetes "go mod edit" go mod edit -go=1.26.0 -godebug=default=go1.26
  local info gomod commit
  info=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION") || fail kubernetes "go mod download"
  gomod=$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  commit=$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("Origin",{}).get("Hash","unknown"))')
  local edits=(-require="k8s.io/kubernetes@$K8S_VERSION")
  while read -r mod; do edits+=(-replace="$mod=$mod@$staging"); done < <(
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$gomod")
  run kubernetes "go mod edit (staging replaces)" go mod edit "${edits[@]}"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  run kubernetes "go mod tidy" go mod tidy
  local date ldf="-s -w"; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldf+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  run kubernetes "go build" go build -trimpath -ldflags "$ldf" -o "$dir/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}

install_etcd() {
  local dir="$CACHE/etcd-$ETCD_VERSION"
  have "$dir/bin/etcd" && return
  step "etcd $ETCD_VERSION: building from go.etcd.io/etcd/server/v3"
  rm -rf "$dir/src"; mkdir -p "$dir/src" "$dir/bin"; cd "$dir/src"
  run etcd "go mod init" go mod init local/etcdbin
  run etcd "go get" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  run etcd "go build" go build -trimpath -ldflags "-s -w" -o "$dir/bin/etcd" go.etcd.io/etcd/server/v3
}

install_kwok() {
  local dir="$CACHE/kwok-$KWOK_VERSION"
  if have "$dir/bin/kwok" && [ -d "$dir/stages" ]; then return; fi
  step "kwok $KWOK_VERSION: building sigs.k8s.io/kwok/cmd/kwok"
  mkdir -p "$dir/bin"
  run kwok "go install" env GOBIN="$dir/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  local src; src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
    || fail kwok "locate stages"
  rm -rf "$dir/stages"; cp -r "$src/kustomize/stage" "$dir/stages"; chmod -R u+w "$dir/stages"
}

install_java() {
  # Elasticsearch 8 needs Java 17+; Debian's headless JRE is enough.
  if command -v java >/dev/null && java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then return; fi
  step "java: installing openjdk-17-jre-headless (for Elasticsearch)"
  run java "apt-get install" bash -c 'apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless'
}

install_elasticsearch() {
  local dir="$CACHE/elasticsearch-$ES_VERSION"
  install_java
  have "$dir/bin/elasticsearch" && return
  step "elasticsearch $ES_VERSION: fetching the integ-test zip from Maven Central"
  local repo="$CACHE/m2"
  run elasticsearch "mvn dependency:get" mvn -q -B -Dmaven.repo.local="$repo" dependency:get \
    "-Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" -Dtransitive=false
  local zip="$repo/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  run elasticsearch unzip python3 -m zipfile -e "$zip" "$dir.tmp"
  rm -rf "$dir"; mv "$dir.tmp/elasticsearch-$ES_VERSION" "$dir"; rm -rf "$dir.tmp"
  chmod +x "$dir"/bin/*
}

install_filebeat() {
  local dir="$CACHE/filebeat-${BEATS_VERSION##*-}"
  have "$dir/bin/filebeat" && return
  step "filebeat (beats ${BEATS_VERSION##*-}): building github.com/elastic/beats/v7/filebeat (cold: ~10 min)"
  rm -rf "$dir/src"; mkdir -p "$dir/src" "$dir/bin"; cd "$dir/src"
  run filebeat "go mod init" go mod init local/fbbin
  local info gomod
  info=$(GONOSUMDB=github.com/elastic go mod download -json "github.com/elastic/beats/v7@$BEATS_VERSION") \
    || fail filebeat "go mod download"
  gomod=$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  local version; version=$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Version"])')
  # A dependency's replace/exclude lines are ignored, so the wrapper repeats beats' own.
  python3 - "$gomod" "$version" >> go.mod <<'PY' || fail filebeat "copy replace/exclude"
import re, sys
text = open(sys.argv[1]).read()
out = [f"require github.com/elastic/beats/v7 {sys.argv[2]}"]
for kw in ("replace", "exclude"):
    for block in re.findall(rf"^{kw} \((.*?)^\)", text, re.M | re.S):
        out += [f"{kw} {line.strip()}" for line in block.splitlines() if line.strip() and not line.strip().startswith("//")]
    out += [line for line in text.splitlines() if line.startswith(f"{kw} ") and not line.rstrip().endswith("(")]
print("\n".join(out))
PY
  local gover; gover=$(sed -n 's/^go \(.*\)/\1/p' "$gomod")
  run filebeat "go mod edit" go mod edit -go="$gover"
  # beats' own go.sum pins every dependency it was tested with; the checksum database does
  # not know beats pseudo-versions nor elastic's forks, so those are trusted from go.sum.
  local src; src=$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  run filebeat "copy go.sum" cp "$src/go.sum" go.sum
  chmod u+w go.sum
  run filebeat "go build" env GONOSUMDB=github.com/elastic,github.com/tommyers-elastic GOFLAGS="-mod=mod -buildvcs=false" \
    go build -trimpath -ldflags "-s -w" -o "$dir/bin/filebeat" github.com/elastic/beats/v7/filebeat
}

install_virtual_kubelet() {
  local dir="$CACHE/virtual-kubelet-$VK_VERSION"
  have "$dir/bin/virtual-kubelet" && return
  step "virtual-kubelet $VK_VERSION (upstream Go, mock provider; benchmark baseline)"
  mkdir -p "$dir/bin"
  # The module proxy refuses this module's version list, so fetch the tag and build in place.
  local src; src=$(go mod download -json "github.com/virtual-kubelet/virtual-kubelet@$VK_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || fail virtual-kubelet "go mod download"
  (cd "$src" && GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "-s -w" \
    -o "$dir/bin/virtual-kubelet" ./cmd/virtual-kubelet) || fail virtual-kubelet "go build"
}

print_paths() {
  local k="$CACHE/k8s-$K8S_VERSION/bin"
  cat <<PATHS
kube_apiserver=$k/kube-apiserver
kube_controller_manager=$k/kube-controller-manager
kube_scheduler=$k/kube-scheduler
kubectl=$k/kubectl
kwok=$CACHE/kwok-$KWOK_VERSION/bin/kwok
kwok_stages=$CACHE/kwok-$KWOK_VERSION/stages
etcd=$CACHE/etcd-$ETCD_VERSION/bin/etcd
elasticsearch=$CACHE/elasticsearch-$ES_VERSION/bin/elasticsearch
filebeat=$CACHE/filebeat-${BEATS_VERSION##*-}/bin/filebeat
PATHS
}

if [ "${1:-}" = paths ]; then print_paths; exit 0; fi
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kwok elasticsearch k8s filebeat)
for c in "${components[@]}"; do
  ( "install_${c//-/_}" )
done
