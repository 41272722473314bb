"""The seccomp filter for sandboxed commands, built with libseccomp and exported as BPF for bwrap.

The rules follow Codex CLI's Linux sandbox (codex-rs/linux-sandbox/src/seccomp.rs in
openai/codex): everything is allowed except the calls below, which fail with EPERM, so a tool
that probes for them gets a clean error instead of being killed.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from functools import lru_cache

import pyseccomp as sc

# Debugging and reading other processes' memory, kernel attack surface that a build or a test
# run has no use for, and everything that changes mounts or namespaces.
DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "io_uring_setup",  # io_uring also opens sockets without socket(2)
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "mount",
    "umount2",
    "pivot_root",
    "unshare",
    "setns",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "quotactl",
)
CLONE_NAMESPACES = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


@lru_cache(maxsize=4)
def filter_bpf(network: bool) -> bytes:
    """The compiled filter: with network off only AF_UNIX sockets, with it on also IPv4/IPv6."""
    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        f.add_rule(deny, name)
    # A new namespace of any kind through clone(2); clone3(2) passes its flags in memory that
    # a filter cannot read, so it reports "not implemented" and libc falls back to clone(2).
    for flag in CLONE_NAMESPACES:
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    # Socket families: libseccomp compares an argument once per rule, so "not one of these"
    # is written as one rule per family outside the allowed set (and one for all above it).
    nofamily = sc.ERRNO(errno.EAFNOSUPPORT)
    allowed = {socket.AF_UNIX, *(IP_FAMILIES if network else ())}
    top = max(allowed)
    for family in range(top):
        if family not in allowed:
            f.add_rule(nofamily, "socket", sc.Arg(0, sc.EQ, family))
    f.add_rule(nofamily, "socket", sc.Arg(0, sc.GT, top))
    f.add_rule(nofamily, "socketpair", sc.Arg(0, sc.NE, socket.AF_UNIX))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def filter_fd(network: bool) -> int:
    """A file descriptor (inheritable, at offset 0) holding the filter, for `bwrap --seccomp`."""
    read_end, write_end = os.pipe()
    data = filter_bpf(network)
    os.write(write_end, data)  # a filter is a few hundred bytes: far below the pipe buffer
    os.close(write_end)
    return read_end
