// Helpers shared by the files that implement store::Store (store.cc,
// retention_store.cc, ...). Not part of the store's interface: only store/
// .cc files include it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/status.h"

namespace rocksdb {
class Status;
}  // namespace rocksdb

namespace snapfs::store::internal {

// A RocksDB status as ours; `what` says what was being done. A held LOCK
// file is kBusy ("in use by another process").
Status FromRocks(const rocksdb::Status& st, const std::string& what);

// Fixed-width big-endian meta values (docs/format.md, "Conventions").
std::string U32(uint32_t v);
std::string U64(uint64_t v);
uint64_t ParseBE(std::string_view s);

}  // namespace snapfs::store::internal
