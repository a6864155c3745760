#include "store/status.h"

#include <cerrno>
#include <cstring>

namespace snapfs {

Status Status::FromErrno(int err, const std::string& what) {
  std::string msg = what + ": " + std::strerror(err);
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return {Code::kNoSpace, msg};
    case EROFS:
      return {Code::kReadOnly, msg};
    case ENOENT:
      return {Code::kNotFound, msg};
    case EACCES:
    case EPERM:
      return {Code::kPermission, msg};
    default:
      return {Code::kIo, msg};
  }
}

int Status::ToErrno() const {
  switch (code_) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kExists: return EEXIST;
    case Code::kNotDir: return ENOTDIR;
    case Code::kIsDir: return EISDIR;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kInvalid: return EINVAL;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kNoSpace: return ENOSPC;
    case Code::kIo: return EIO;
    case Code::kCorruption: return EIO;
    case Code::kReadOnly: return EROFS;
    case Code::kPermission: return EPERM;
    case Code::kBusy: return EBUSY;
    case Code::kUnsupported: return EOPNOTSUPP;
    case Code::kTooBig: return EFBIG;
    case Code::kVersion: return EIO;
    case Code::kCrossDevice: return EXDEV;
    case Code::kLoop: return ELOOP;
    case Code::kRange: return ERANGE;
  }
  return EIO;
}

std::string Status::ToString() const {
  static const char* const kNames[] = {
      "ok",        "not found",    "exists",      "not a directory",
      "is a directory", "not empty", "invalid argument", "name too long",
      "no space left", "I/O error", "corruption", "read-only",
      "not permitted", "busy",     "unsupported", "file too big",
      "incompatible format version", "cross-device", "too many links", "out of range"};
  std::string s = kNames[static_cast<int>(code_)];
  if (!message_.empty()) s += ": " + message_;
  return s;
}

}  // namespace snapfs
