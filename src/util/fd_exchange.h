// fd_exchange.h: hand a file descriptor to another process of the same user.
//
// CUDA's legacy IPC (cuIpcGetMemHandle / cuIpcOpenMemHandle) passes a 64-byte
// handle between processes through whatever channel the program likes (a pipe,
// a multiprocessing queue). Memory backed by CUDA virtual memory can only be
// shared as a file descriptor (cuMemExportToShareableHandle), and a descriptor
// cannot travel in 64 bytes: the importer must fetch it from the exporter.
//
// Two ways exist. pidfd_getfd(2) needs ptrace rights over the exporter, which
// Yama (ptrace_scope 1, Ubuntu's default) denies to a child over its parent,
// the usual direction (torch.multiprocessing). So the exporter answers on an
// abstract Unix socket instead (named after prefix, pid and a random process
// id): the importer connects,
// presents the 16-byte key the handle carries, and receives a copy of the
// descriptor with SCM_RIGHTS. Peers of another user are refused
// (SO_PEERCRED); a wrong key gets nothing. The answering thread starts with
// the first offer and blocks every signal, so the program's handlers never
// run on it.
//
// No exceptions, no output: this runs inside other people's processes.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>

namespace nz::fdx {

using Key = std::array<uint8_t, 16>;

// 16 bytes from getrandom(2) (urandom's pool; falls back to the clock and pid
// mixed, which still makes keys distinct within a run).
Key random_key() noexcept;

// This process's random 64-bit id (a new one in a forked child): part of the
// socket's name, so that processes of two pid namespaces sharing one network
// namespace (containers of one Kubernetes pod) never meet under one pid.
uint64_t process_id() noexcept;

// Offers a copy of `fd` (dup'ed here; the caller keeps its own) under `key`,
// answered on "\0<prefix>-<getpid()>-<process_id()>". The prefix must be at
// most 40 bytes. False (errno set) when the socket or the thread cannot be made.
// A child forked from here closes the socket and its copies of the
// descriptors (pthread_atfork): the parent's memory is not held by children
// that never asked for it, and the name goes with the parent.
bool offer(const char* prefix, const Key& key, int fd) noexcept;
// Stops offering `key` and closes the copy. Harmless for an unknown key.
void withdraw(const Key& key) noexcept;

// Fetches the descriptor offered under `key` by process `pid` (whose
// process_id() is `process_id`) with `prefix`.
// Returns a new descriptor (close-on-exec) or -1 with errno: ECONNREFUSED or
// ENOENT when nothing answers there, ENOKEY for an unknown key, ETIMEDOUT.
int fetch(const char* prefix, pid_t pid, uint64_t process_id, const Key& key, int timeout_ms) noexcept;

}  // namespace nz::fdx
