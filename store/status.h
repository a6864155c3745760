// Status and Result<T>: how every snapfs layer reports failure.
//
// A Status is either OK or carries a Code (POSIX-shaped, so the fs layer can
// map it to an errno with one table) and a human-readable message that names
// the object concerned ("chunk 3f2a...: hash mismatch"). No exception ever
// carries an error across a layer boundary; rocksdb::Status never leaves
// store/.
//
// Thread-safety: values; safe to copy and move between threads.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace snapfs {

enum class Code {
  kOk = 0,
  kNotFound,      // ENOENT: no such key, inode, entry or state.
  kExists,        // EEXIST
  kNotDir,        // ENOTDIR
  kIsDir,         // EISDIR
  kNotEmpty,      // ENOTEMPTY
  kInvalid,       // EINVAL: bad argument or request.
  kNameTooLong,   // ENAMETOOLONG
  kNoSpace,       // ENOSPC: the store's filesystem is full.
  kIo,            // EIO: an I/O call failed.
  kCorruption,    // EIO: bytes read from disk fail a check; names the object.
  kReadOnly,      // EROFS: the store or view is read-only.
  kPermission,    // EPERM
  kBusy,          // EBUSY: e.g. the store is locked by another process.
  kUnsupported,   // EOPNOTSUPP
  kTooBig,        // EFBIG
  kVersion,       // EIO: store written by an incompatible format version.
  kCrossDevice,   // EXDEV
  kLoop,          // ELOOP
  kRange,         // ERANGE
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK.
  Status(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Exists(std::string m) { return {Code::kExists, std::move(m)}; }
  static Status Invalid(std::string m) { return {Code::kInvalid, std::move(m)}; }
  static Status Io(std::string m) { return {Code::kIo, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status NoSpace(std::string m) { return {Code::kNoSpace, std::move(m)}; }
  static Status ReadOnly(std::string m) { return {Code::kReadOnly, std::move(m)}; }
  static Status Busy(std::string m) { return {Code::kBusy, std::move(m)}; }
  static Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
  static Status Version(std::string m) { return {Code::kVersion, std::move(m)}; }
  // An I/O failure from a syscall: ENOSPC/EDQUOT become kNoSpace, EROFS
  // becomes kReadOnly, everything else kIo. `what` names the object.
  static Status FromErrno(int err, const std::string& what);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // The errno a POSIX caller should see (positive; 0 when OK).
  int ToErrno() const;
  // "corruption: chunk 3f..: hash mismatch"; "ok" when OK.
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design.
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "Result needs a value or an error");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace snapfs

// Return early from the enclosing function when `expr` is not OK.
#define SNAPFS_RETURN_IF_ERROR(expr)            \
  do {                                          \
    ::snapfs::Status _snapfs_st = (expr);       \
    if (!_snapfs_st.ok()) return _snapfs_st;    \
  } while (0)

// Assign the value of Result `rexpr` to `lhs`, or return its error.
#define SNAPFS_CONCAT_INNER(a, b) a##b
#define SNAPFS_CONCAT(a, b) SNAPFS_CONCAT_INNER(a, b)
#define SNAPFS_ASSIGN_OR_RETURN(lhs, rexpr) \
  SNAPFS_ASSIGN_OR_RETURN_IMPL(SNAPFS_CONCAT(_snapfs_r, __LINE__), lhs, rexpr)
#define SNAPFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                 \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
