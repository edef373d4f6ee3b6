// ipc_handle.h: the 64 bytes of a CUipcMemHandle that neuzip hands out for
// memory it serves (ipc_export.cpp) and recognises when opened (ipc_import.cpp).
//
// Legacy IPC cannot export virtual memory, so the exporting process backs the
// allocation with one exportable handle and offers its file descriptor on a
// socket (util/fd_exchange.h); the handle tells the importer where to ask:
// the exporter's pid and a random key. A driver's own handles never begin
// with the magic (they are opaque, but a process reading ours without neuzip
// gets CUDA_ERROR_INVALID_VALUE or similar from the driver, not a mapping).
#pragma once

#include <cuda.h>

#include <cstdint>
#include <cstring>
#include <optional>

#include "util/fd_exchange.h"

namespace nz::rt {

inline constexpr char kIpcMagic[8] = {'n', 'e', 'u', 'z', 'i', 'p', 'I', 'P'};
inline constexpr uint32_t kIpcVersion = 1;
inline constexpr const char* kIpcSocketPrefix = "neuzip-ipc";

struct IpcHandleBody {
  char magic[8];
  uint32_t version;
  int32_t pid;      // the exporting process
  uint64_t process_id;  // its fdx::process_id() (pids of two namespaces may meet)
  uint64_t bytes;   // the exported handle's size (whole pages)
  uint64_t requested;  // the program's allocation size (pointer queries answer it)
  fdx::Key key;     // what the exporter's socket asks for
};
static_assert(sizeof(IpcHandleBody) <= sizeof(CUipcMemHandle));

inline void write_ipc_handle(CUipcMemHandle* out, const IpcHandleBody& body) noexcept {
  std::memset(out, 0, sizeof(*out));
  std::memcpy(out, &body, sizeof(body));
}

// The body of one of our handles, or nothing for a driver's own.
inline std::optional<IpcHandleBody> read_ipc_handle(const CUipcMemHandle& h) noexcept {
  IpcHandleBody body;
  std::memcpy(&body, &h, sizeof(body));
  if (std::memcmp(body.magic, kIpcMagic, sizeof(kIpcMagic)) != 0 || body.version != kIpcVersion) return std::nullopt;
  return body;
}

}  // namespace nz::rt
