// Trace::open when several processes of a run share NEUZIP_TRACE. The lock is
// per open file description, so two opens in this one process contend as two
// processes would; "<path>.<pid>" then carries this process's pid.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "runtime/trace.h"

namespace nz::rt {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class TraceFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "nz_trace_file_" + std::to_string(::getpid());
    sibling_ = path_ + "." + std::to_string(::getpid());
    std::filesystem::remove(path_);
    std::filesystem::remove(sibling_);
  }
  void TearDown() override {
    std::filesystem::remove(path_);
    std::filesystem::remove(sibling_);
  }
  std::string path_, sibling_;
};

TEST_F(TraceFile, AWriterWhileAnotherHoldsThePathWritesBesideIt) {
  Trace first, second;
  ASSERT_TRUE(first.open(path_));
  first.emit("alloc", 0x1000, 1);
  ASSERT_TRUE(second.open(path_));
  EXPECT_EQ(second.path(), sibling_);
  second.emit("tag", 0x2000, 2);
  first.emit("free", 0x1000, 1);
  const std::string a = read_file(path_), b = read_file(sibling_);
  // Neither truncated nor overwrote the other's lines.
  EXPECT_NE(a.find("\"alloc\""), std::string::npos) << a;
  EXPECT_NE(a.find("\"free\""), std::string::npos) << a;
  EXPECT_EQ(a.find("\"tag\""), std::string::npos) << a;
  EXPECT_NE(b.find("\"tag\""), std::string::npos) << b;
}

TEST_F(TraceFile, ALaterProcessOfAFreshRunWritesBesideTheFirstOnesLines) {
  {
    Trace first;
    ASSERT_TRUE(first.open(path_, true));  // nztrace's empty file: taken
    EXPECT_EQ(first.path(), path_);
    first.emit("alloc", 0x1000, 1);
  }  // the first process exited
  Trace later;
  ASSERT_TRUE(later.open(path_, true));
  EXPECT_EQ(later.path(), sibling_);
  later.emit("tag", 0x2000, 2);
  EXPECT_NE(read_file(path_).find("\"alloc\""), std::string::npos);
  EXPECT_NE(read_file(sibling_).find("\"tag\""), std::string::npos);
}

TEST_F(TraceFile, WithoutARunTheNextProgramTakesThePathAfresh) {
  {
    Trace earlier;
    ASSERT_TRUE(earlier.open(path_));
    earlier.emit("alloc", 0x1000, 1);
  }
  Trace next;  // NEUZIP_TRACE set by hand, the program run again
  ASSERT_TRUE(next.open(path_));
  EXPECT_EQ(next.path(), path_);
  next.emit("tag", 0x2000, 2);
  const std::string a = read_file(path_);
  EXPECT_EQ(a.find("\"alloc\""), std::string::npos) << "the earlier run's lines were kept: " << a;
  EXPECT_NE(a.find("\"tag\""), std::string::npos) << a;
  EXPECT_FALSE(std::filesystem::exists(sibling_));
}

TEST_F(TraceFile, APipeIsWrittenAsItIs) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string path = "/proc/self/fd/" + std::to_string(fds[1]);
  {
    Trace t;
    ASSERT_TRUE(t.open(path));  // no lock, no truncation: NEUZIP_TRACE=/dev/stderr
    EXPECT_EQ(t.path(), path);
    t.emit("alloc", 0x1000, 1);
  }
  ::close(fds[1]);
  char buf[256] = {};
  const ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
  ::close(fds[0]);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf).find("\"alloc\""), std::string::npos) << buf;
}

// NEUZIP_TRACE=/dev/stderr with stderr redirected to a file: the program's
// own lines stay, and every process of the run appends to it.
TEST_F(TraceFile, AStreamPathIsAppendedToNeverTruncatedOrLocked) {
  {
    std::ofstream(path_) << "the program's own line\n";
  }
  const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  const std::string stream = "/proc/self/fd/" + std::to_string(fd);
  {
    Trace a, b;
    ASSERT_TRUE(a.open(stream, true));
    ASSERT_TRUE(b.open(stream, true));
    EXPECT_EQ(a.path(), stream);
    EXPECT_EQ(b.path(), stream);
    a.emit("alloc", 0x1000, 1);
    b.emit("tag", 0x2000, 2);
  }
  ::close(fd);
  const std::string text = read_file(path_);
  EXPECT_EQ(text.rfind("the program's own line\n", 0), 0u) << text;
  EXPECT_NE(text.find("\"alloc\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"tag\""), std::string::npos) << text;
}

// A helper of the program that never writes a line makes no file.
TEST_F(TraceFile, OpenedAtTheFirstLineOnly) {
  Trace holder, helper, worker;
  holder.open_at_first_line(path_, true);
  helper.open_at_first_line(path_, true);
  EXPECT_TRUE(holder.enabled());
  EXPECT_FALSE(std::filesystem::exists(path_));
  holder.emit("alloc", 0x1000, 1);
  EXPECT_EQ(holder.path(), path_);
  EXPECT_FALSE(std::filesystem::exists(sibling_)) << "the helper wrote nothing and made a file";
  worker.open_at_first_line(path_, true);
  worker.emit("tag", 0x2000, 2);  // the path is held: beside it
  EXPECT_EQ(worker.path(), sibling_);
  EXPECT_NE(read_file(path_).find("\"alloc\""), std::string::npos);
  EXPECT_NE(read_file(sibling_).find("\"tag\""), std::string::npos);
  EXPECT_TRUE(helper.path().empty());
}

TEST_F(TraceFile, AnUnwritablePathTurnsTracingOff) {
  Trace t;
  EXPECT_FALSE(t.open("/nonexistent-dir/trace"));
  EXPECT_FALSE(t.enabled());
  t.emit("alloc", 0, 0);  // nothing, no crash
}

}  // namespace
}  // namespace nz::rt
