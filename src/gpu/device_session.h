// device_session.h: driver + primary context of device 0, for the standalone
// programs (tests, nzgpubench). The runtime has its own context handling.
#pragma once

#include <cuda.h>

#include <string>

#include "gpu/driver_api.h"

namespace nz::gpu {

class DeviceSession {
 public:
  DeviceSession() = default;
  DeviceSession(const DeviceSession&) = delete;
  DeviceSession& operator=(const DeviceSession&) = delete;
  ~DeviceSession();

  // Loads libcuda.so.1, cuInit, retains device 0's primary context and makes
  // it current. False with `error` when any step fails (no driver, no device).
  bool open(std::string& error);

  const DriverApi& api() const { return api_; }
  const std::string& device_name() const { return name_; }
  bool is_simulator() const { return name_.rfind("nzsim", 0) == 0; }

 private:
  DriverApi api_{};
  CUdevice device_ = 0;
  bool retained_ = false;
  std::string name_;
};

}  // namespace nz::gpu
