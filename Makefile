# Two entry points for a fresh Debian/Ubuntu machine: `make lab` and `make test` (see README).
SHELL := /bin/bash
INVENTORY ?= inventories/lab
KERNEL_INVENTORY ?= inventories/kernel
VENV := .venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := podman runc debootstrap golang-github-containernetworking-plugin-dnsname python3-venv \
  qemu-system-x86 qemu-utils openssh-client e2fsprogs shellcheck graphviz prometheus nftables
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: deps venv lab lab-up lab-down lab-kernel bench-kernel lab-kernel-up lab-kernel-down test lint unit molecule clean

deps: .cache/apt.stamp
.cache/apt.stamp: Makefile
	@mkdir -p .cache
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements.txt | deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	@touch $@

# The lab is rootful podman: everything that talks to its containers runs as root.
AS_ROOT := $(SUDO) env PATH="$(PATH)" CONTAINERS_CONF="$(CONTAINERS_CONF)" ANSIBLE_CONFIG="$(ANSIBLE_CONFIG)"

# The main job on the built-in lab: create the nodes, deploy, verify from the live system.
lab: lab-up
	$(AS_ROOT) ansible-playbook site.yml -i $(INVENTORY)
	$(AS_ROOT) ansible-playbook playbooks/verify.yml -i $(INVENTORY)
	$(AS_ROOT) ansible-playbook playbooks/topology.yml -i $(INVENTORY)

lab-up: venv
	$(AS_ROOT) python3 lab/podlab.py up -i $(INVENTORY)

lab-down: venv
	$(AS_ROOT) python3 lab/podlab.py down -i $(INVENTORY)

# The same on the kernel lab: QEMU/TCG VMs with the full Debian kernel, so the production data path
# (native ESP) runs. Slower: about 3 minutes to boot, a few more to deploy.
lab-kernel: lab-kernel-up
	$(AS_ROOT) ansible-playbook site.yml -i $(KERNEL_INVENTORY)
	$(AS_ROOT) ansible-playbook playbooks/verify.yml -i $(KERNEL_INVENTORY)

# ESP cipher throughput on the kernel lab (native ESP): iperf3 over the tunnel against the underlay
# in the same run, AES-GCM and ChaCha20-Poly1305, printed as ratios (playbooks/cipher_benchmark.yml).
bench-kernel: lab-kernel
	$(AS_ROOT) ansible-playbook playbooks/cipher_benchmark.yml -i $(KERNEL_INVENTORY)

lab-kernel-up: venv
	$(AS_ROOT) python3 lab/vmlab.py up -i $(KERNEL_INVENTORY)

lab-kernel-down: venv
	$(AS_ROOT) python3 lab/vmlab.py down -i $(KERNEL_INVENTORY)

test: lint unit molecule

lint: venv
	ruff check plugins tests lab benchmarks tools molecule
	ruff format --check plugins tests lab benchmarks tools molecule
	ansible-lint --profile production
	$(MAKE) sanity

# ansible-test sanity on the built artifact, locally without containers (tools/sanity.sh says why);
# ignores, each with its reason, in tests/sanity/ignore-2.19.txt.
.PHONY: sanity docs
sanity: venv
	tools/sanity.sh

# docs/roles.md from every roles/*/meta/argument_specs.yml (a test fails when it is stale).
docs: venv
	python3 tools/role_docs.py

# Unit tests, and integration tests that run ansible-playbook on the controller only.
unit: venv
	python3 -m pytest tests/unit tests/integration

# The container scenarios run two at a time: one keeps about a third of the 2 cores busy (ansible and
# podman exec wait on each other), and each has its own lab (names, networks). A scenario's output is
# printed when it ends (--output-sync). The kernel scenario runs alone: its QEMU/TCG VMs need both
# cores. Longest first, so the two lanes end together.
CONTAINER_SCENARIOS := lifecycle hub_spoke default partial_mesh nat
MOLECULE_SCENARIOS := $(CONTAINER_SCENARIOS) kernel
# The kernel lab's VM image (built once per recipe) is built meanwhile, in the background.
molecule: venv
	$(AS_ROOT) lab/image.sh >/dev/null
	$(AS_ROOT) lab/vm/image.sh >.cache/vm-image.log 2>&1 & vm=$$!; \
	$(MAKE) -j2 --output-sync=target $(addprefix scenario-,$(CONTAINER_SCENARIOS)); lanes=$$?; \
	wait $$vm || { cat .cache/vm-image.log; exit 1; }; exit $$lanes
	$(MAKE) scenario-kernel

# One scenario: make scenario-<name> (the same as molecule test -s <name>, as root).
scenario-%: venv
	@start=$$(date +%s); $(AS_ROOT) molecule test -s $* && echo "scenario $* passed in $$(( $$(date +%s) - start )) s"

clean: lab-down lab-kernel-down
	rm -rf $(VENV) .cache

# Scale benchmarks (figures and ratios measured in the same run; see README "Performance").
.PHONY: bench
bench: venv
	python3 benchmarks/bench_planner.py
	python3 benchmarks/bench_render.py
