// Deterministic, seeded content that looks like what a nightly dump job
// writes: rows of a few business tables (people, orders, order lines,
// comments, accounts) rendered as a PostgreSQL plain dump (COPY blocks) or as
// a Python fixture dump (one loader call per row, as Django/Lino dumps do).
//
// Realism targets (checked by hand with `zstd -3`): the text compresses 3-8x,
// like real dumps, not 90x like repeated filler. It mixes names and words
// from lists (skewed, so common words are common), random numbers, dates,
// prices, e-mail addresses and a few random hex codes.
//
// History model: every row has an id and a version. On each day d >= 2 a row
// is rewritten (its version bumps, so its mutable fields change) with
// probability `change` (default 1 %), and deleted with a small probability;
// a few rows are appended. A row's bytes depend only on (seed, table, id,
// version), so day N can be produced directly, without days 1..N-1, and two
// days share every unchanged row byte for byte.
//
// Used by bench/dump_gen.cc (the end-to-end benchmark's generator) and by
// bench/store_bench.cc. Header-only; not part of snapfs.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::bench {

// splitmix64's finalizer: a good 64-bit mix, cheap.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
inline uint64_t Hash(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return Mix64(Mix64(Mix64(Mix64(a) ^ b) ^ c) ^ d);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() { return Mix64(s_ += 0x632be59bd9b4e019ull); }
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Skewed towards small values, roughly like word frequencies.
  uint64_t Skewed(uint64_t n) { return Below(Below(n) + 1); }

 private:
  uint64_t s_;
};

inline constexpr std::string_view kFirstNames[] = {
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karin",
    "Lukas", "Marie", "Noah", "Olga", "Paul", "Quentin", "Rosa", "Simon", "Tina", "Ulrich",
    "Vera", "Walter", "Xenia", "Yann", "Zoe", "Alice", "Bruno", "Chloe", "Dario", "Elena",
    "Frank", "Gabriel", "Hanna", "Igor", "Julia", "Kevin", "Laura", "Martin", "Nina", "Oscar",
    "Petra", "Rafael", "Sofia", "Thomas", "Ursula", "Victor", "Wanda", "Luc", "Mathieu",
    "Aline", "Bernard", "Celine", "Didier", "Eva", "Fabian", "Gilles", "Helene", "Isabelle",
    "Jean", "Katrin", "Leon", "Monique", "Nicolas", "Odile", "Pierre", "Renate", "Sabine",
    "Tobias", "Uwe", "Yvonne", "Zacharias", "Ahmed", "Fatima", "Mehmet", "Ayse", "Ivan",
    "Svetlana", "Pedro", "Lucia", "Kenji", "Mei", "Arjun", "Priya", "Kwame", "Amara"};
inline constexpr std::string_view kLastNames[] = {
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Dubois", "Lambert", "Martin", "Bernard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "Martinez", "Lopez", "Gonzalez",
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Smith", "Johnson",
    "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Anderson", "Thomas",
    "Jackson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell",
    "Roberts", "Carter", "Phillips", "Evans", "Turner", "Torres", "Parker", "Collins",
    "Edwards", "Stewart", "Flores", "Morris", "Nguyen", "Murphy", "Rivera", "Cook", "Rogers",
    "Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
    "Wouters", "De Smet", "Dupont", "Lemaire", "Kowalski", "Nowak", "Novak", "Horvat",
    "Yilmaz", "Kaya", "Demir", "Sahin", "Ivanov", "Petrov", "Tanaka", "Suzuki", "Kim", "Lee"};
inline constexpr std::string_view kCities[] = {
    "Eupen", "Liège", "Brussels", "Namur", "Aachen", "Cologne", "Berlin", "Hamburg", "Munich",
    "Paris", "Lyon", "Lille", "Tallinn", "Tartu", "Riga", "Vilnius", "Amsterdam", "Utrecht",
    "Antwerp", "Ghent", "Bruges", "Luxembourg", "Strasbourg", "Basel", "Zurich", "Geneva",
    "Vienna", "Graz", "Prague", "Brno", "Warsaw", "Krakow", "Madrid", "Seville", "Lisbon",
    "Porto", "Rome", "Milan", "Turin", "Naples", "London", "Leeds", "Dublin", "Cork",
    "Stockholm", "Oslo", "Helsinki", "Copenhagen", "Malmedy", "Verviers", "Spa", "Kelmis"};
inline constexpr std::string_view kStreets[] = {
    "Main Street", "Church Road", "Station Road", "Rue de la Gare", "Hauptstraße",
    "Bahnhofstraße", "Kirchstraße", "Rue Haute", "Avenue Louise", "Mill Lane", "High Street",
    "Park Avenue", "Schulstraße", "Gartenweg", "Rue du Moulin", "Lindenallee", "Oak Drive",
    "Rue de Verviers", "Aachener Straße", "Marktplatz", "Klosterstraße", "Bergstraße"};
inline constexpr std::string_view kDomains[] = {
    "example.com", "mail.example.org", "post.example.net", "web.example.de", "example.be",
    "corp.example.eu", "uni.example.edu", "isp.example.fr"};
inline constexpr std::string_view kStatuses[] = {"new", "confirmed", "paid", "shipped",
                                                 "delivered", "returned", "cancelled"};
inline constexpr std::string_view kCurrencies[] = {"EUR", "EUR", "EUR", "USD", "GBP", "CHF"};
inline constexpr std::string_view kProducts[] = {
    "chair", "table", "lamp", "desk", "shelf", "cabinet", "sofa", "bed", "mattress", "pillow",
    "blanket", "curtain", "rug", "mirror", "clock", "vase", "frame", "cushion", "stool",
    "bench", "wardrobe", "drawer", "bookcase", "armchair", "ottoman", "sideboard", "dresser"};
inline constexpr std::string_view kAdjectives[] = {
    "small", "large", "red", "blue", "green", "oak", "pine", "steel", "leather", "vintage",
    "modern", "classic", "folding", "round", "square", "white", "black", "walnut", "linen",
    "wool", "cotton", "glass", "bamboo", "rustic", "compact", "deluxe", "outdoor", "kids"};
// Free text: common English words first (the skewed draw favours them).
inline constexpr std::string_view kWords[] = {
    "the", "of", "and", "to", "a", "in", "is", "for", "that", "on", "with", "was", "as", "it",
    "be", "at", "by", "this", "have", "from", "or", "not", "are", "but", "we", "an", "they",
    "which", "you", "were", "all", "their", "has", "been", "one", "will", "would", "there",
    "customer", "order", "delivery", "invoice", "payment", "please", "call", "back", "asked",
    "about", "after", "before", "week", "month", "monday", "friday", "again", "new", "address",
    "phone", "email", "sent", "received", "missing", "damaged", "replacement", "refund",
    "discount", "price", "product", "package", "parcel", "driver", "warehouse", "stock",
    "available", "soon", "late", "early", "morning", "evening", "contract", "renewal", "offer",
    "quote", "meeting", "visit", "office", "manager", "team", "project", "report", "review",
    "problem", "solved", "open", "closed", "pending", "urgent", "important", "note", "reminder",
    "confirm", "cancel", "change", "update", "request", "account", "balance", "credit",
    "transfer", "bank", "card", "cash", "receipt", "tax", "vat", "number", "reference", "file",
    "document", "scan", "signed", "copy", "original", "letter", "mail", "post", "box", "door",
    "floor", "building", "street", "city", "country", "region", "school", "course", "lesson",
    "teacher", "student", "class", "group", "member", "membership", "fee", "yearly", "monthly",
    "quarter", "season", "summer", "winter", "spring", "autumn", "holiday", "vacation",
    "absent", "present", "sick", "doctor", "hospital", "family", "child", "children", "parent",
    "mother", "father", "wife", "husband", "friend", "neighbour", "colleague", "partner",
    "supplier", "client", "service", "support", "ticket", "issue", "bug", "feature", "release",
    "version", "server", "backup", "database", "dump", "restore", "disk", "full", "space",
    "slow", "fast", "good", "bad", "better", "best", "worse", "quite", "very", "really",
    "maybe", "probably", "certainly", "never", "always", "sometimes", "often", "rarely",
    "yesterday", "today", "tomorrow", "next", "last", "first", "second", "third", "final",
    "draft", "approved", "rejected", "waiting", "answer", "question", "agreed", "disagreed",
    "explained", "wrote", "said", "told", "wants", "needs", "prefers", "likes", "hates",
    "agreement", "deadline", "schedule", "calendar", "appointment", "postponed", "moved"};

template <typename T, size_t N>
std::string_view Pick(Rng& rng, const T (&list)[N]) {
  return list[rng.Below(N)];
}
template <typename T, size_t N>
std::string_view PickSkewed(Rng& rng, const T (&list)[N]) {
  return list[rng.Skewed(N)];
}

// Field values go to a Sink, which renders them in one dump format. Both
// sinks append to a std::string.
class SinkBase {
 public:
  explicit SinkBase(std::string* out) : out_(out) {}
  void Raw(std::string_view s) { out_->append(s); }
  void Num(uint64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    (void)ec;
    out_->append(buf, end);
  }
  void Padded(uint64_t v, int width) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    (void)ec;
    for (int n = static_cast<int>(end - buf); n < width; ++n) out_->push_back('0');
    out_->append(buf, end);
  }
  void Cents(uint64_t cents) {
    Num(cents / 100);
    out_->push_back('.');
    Padded(cents % 100, 2);
  }
  void DateBody(uint64_t day_index) {  // Days since 2000-01-01, on a 28-day month grid.
    Num(2000 + day_index / 336);
    out_->push_back('-');
    Padded(day_index / 28 % 12 + 1, 2);
    out_->push_back('-');
    Padded(day_index % 28 + 1, 2);
  }
  void TimeBody(uint64_t seconds) {
    Padded(seconds / 3600 % 24, 2);
    out_->push_back(':');
    Padded(seconds / 60 % 60, 2);
    out_->push_back(':');
    Padded(seconds % 60, 2);
  }
  std::string* out() { return out_; }

 protected:
  std::string* out_;
};

// PostgreSQL COPY text: tab-separated, \N for NULL, one row per line.
class CopySink : public SinkBase {
 public:
  using SinkBase::SinkBase;
  void Begin() { first_ = true; }
  void End() { out_->push_back('\n'); }
  void Int(uint64_t v) { Sep(); Num(v); }
  void Money(uint64_t cents) { Sep(); Cents(cents); }
  void Null() { Sep(); out_->append("\\N"); }
  void Date(uint64_t day) { Sep(); DateBody(day); }
  void Timestamp(uint64_t day, uint64_t sec) {
    Sep();
    DateBody(day);
    out_->push_back(' ');
    TimeBody(sec);
    out_->append("+01");
  }
  // Text is opened, filled with Raw()/Num() and closed.
  void TextBegin() { Sep(); }
  void TextEnd() {}
  void Bool(bool b) { Sep(); out_->push_back(b ? 't' : 'f'); }

 private:
  void Sep() {
    if (!first_) out_->push_back('\t');
    first_ = false;
  }
  bool first_ = true;
};

// A Python fixture line: loader.save(create_<table>(1,'text',date(2020,1,2),...)).
class PySink : public SinkBase {
 public:
  PySink(std::string* out, std::string_view table) : SinkBase(out), table_(table) {}
  void Begin() {
    out_->append("loader.save(create_");
    out_->append(table_);
    out_->push_back('(');
    first_ = true;
  }
  void End() { out_->append("))\n"); }
  void Int(uint64_t v) { Sep(); Num(v); }
  void Money(uint64_t cents) { Sep(); out_->append("'"); Cents(cents); out_->append("'"); }
  void Null() { Sep(); out_->append("None"); }
  void Date(uint64_t day) {
    Sep();
    out_->append("date(");
    Num(2000 + day / 336);
    out_->push_back(',');
    Num(day / 28 % 12 + 1);
    out_->push_back(',');
    Num(day % 28 + 1);
    out_->push_back(')');
  }
  void Timestamp(uint64_t day, uint64_t sec) {
    Sep();
    out_->append("dt(");
    Num(2000 + day / 336);
    out_->push_back(',');
    Num(day / 28 % 12 + 1);
    out_->push_back(',');
    Num(day % 28 + 1);
    out_->push_back(',');
    Num(sec / 3600 % 24);
    out_->push_back(',');
    Num(sec / 60 % 60);
    out_->push_back(',');
    Num(sec % 60);
    out_->push_back(')');
  }
  void TextBegin() { Sep(); out_->push_back('\''); }
  void TextEnd() { out_->push_back('\''); }
  void Bool(bool b) { Sep(); out_->append(b ? "True" : "False"); }

 private:
  void Sep() {
    if (!first_) out_->push_back(',');
    first_ = false;
  }
  std::string_view table_;
  bool first_ = true;
};

// The tables. Each row draws its immutable fields from Rng(seed, table, id)
// and its mutable ones from Rng(seed, table, id, version).
enum class Table : uint8_t { kCustomers, kOrders, kOrderLines, kComments, kAccounts };
inline constexpr Table kDumpTables[] = {Table::kCustomers, Table::kOrders, Table::kOrderLines,
                                        Table::kComments};

struct TableInfo {
  std::string_view name;
  std::string_view columns;   // For the COPY header and the Python field comment.
  std::string_view create;    // CREATE TABLE body.
  double share;               // Share of the dump's bytes.
};

inline const TableInfo& InfoOf(Table t) {
  static const TableInfo kInfo[] = {
      {"customers",
       "id, first_name, last_name, email, phone, street, house_no, zip, city, birth_date, "
       "created_at, balance, active, notes",
       "id bigint NOT NULL, first_name text, last_name text, email text, phone text, street "
       "text, house_no integer, zip text, city text, birth_date date, created_at timestamp "
       "with time zone, balance numeric(12,2), active boolean, notes text",
       0.22},
      {"orders",
       "id, customer_id, ordered_at, status, total, currency, items, shipping_city, tracking, "
       "paid_on",
       "id bigint NOT NULL, customer_id bigint, ordered_at timestamp with time zone, status "
       "text, total numeric(12,2), currency character(3), items integer, shipping_city text, "
       "tracking text, paid_on date",
       0.28},
      {"order_lines",
       "id, order_id, product_id, quantity, unit_price, discount, description",
       "id bigint NOT NULL, order_id bigint, product_id integer, quantity integer, unit_price "
       "numeric(10,2), discount numeric(5,2), description text",
       0.28},
      {"comments", "id, customer_id, author, created_at, body",
       "id bigint NOT NULL, customer_id bigint, author text, created_at timestamp with time "
       "zone, body text",
       0.22},
      {"pgbench_accounts", "aid, bid, abalance, filler",
       "aid integer NOT NULL, bid integer, abalance integer, filler character(84)", 1.0},
  };
  return kInfo[static_cast<size_t>(t)];
}

template <typename Sink>
void Words(Rng& rng, Sink& s, int n) {
  for (int i = 0; i < n; ++i) {
    if (i > 0) s.Raw(rng.Below(12) == 0 ? ", " : " ");
    s.Raw(PickSkewed(rng, kWords));
  }
}

// Appends one row of `t` to the sink.
template <typename Sink>
void Row(Sink& s, uint64_t seed, Table t, uint64_t id, uint32_t version) {
  const uint64_t ti = static_cast<uint64_t>(t);
  Rng fixed(Hash(seed, ti, id));
  Rng mut(Hash(seed, ti, id, 0x100000000ull + version));
  s.Begin();
  s.Int(id);
  switch (t) {
    case Table::kCustomers: {
      const std::string_view first = Pick(fixed, kFirstNames);
      const std::string_view last = PickSkewed(fixed, kLastNames);
      s.TextBegin(); s.Raw(first); s.TextEnd();
      s.TextBegin(); s.Raw(last); s.TextEnd();
      s.TextBegin();
      s.Raw(first); s.Raw("."); s.Raw(last); s.Num(mut.Below(100)); s.Raw("@");
      s.Raw(Pick(mut, kDomains));
      s.TextEnd();
      s.TextBegin(); s.Raw("+32 87 "); s.Padded(fixed.Below(1000000), 6); s.TextEnd();
      s.TextBegin(); s.Raw(Pick(mut, kStreets)); s.TextEnd();
      s.Int(mut.Below(200) + 1);
      s.TextBegin(); s.Padded(fixed.Below(9000) + 1000, 4); s.TextEnd();
      s.TextBegin(); s.Raw(PickSkewed(mut, kCities)); s.TextEnd();
      s.Date(fixed.Below(20000) / 2);
      s.Timestamp(6000 + id / 300, fixed.Below(86400));
      s.Money(mut.Below(5) == 0 ? 0 : mut.Below(2000000));
      s.Bool(mut.Below(10) != 0);
      if (mut.Below(3) == 0) {
        s.Null();
      } else {
        s.TextBegin(); Words(mut, s, static_cast<int>(3 + mut.Below(12))); s.TextEnd();
      }
      break;
    }
    case Table::kOrders: {
      s.Int(fixed.Below(1 + id / 3) + 1);
      s.Timestamp(6000 + id / 1000, fixed.Below(86400));
      s.TextBegin(); s.Raw(PickSkewed(mut, kStatuses)); s.TextEnd();
      s.Money(mut.Below(50000) + 100);
      s.TextBegin(); s.Raw(PickSkewed(fixed, kCurrencies)); s.TextEnd();
      s.Int(fixed.Skewed(12) + 1);
      s.TextBegin(); s.Raw(PickSkewed(fixed, kCities)); s.TextEnd();
      if (mut.Below(4) == 0) {
        s.Null();
      } else {
        static constexpr char kHex[] = "0123456789ABCDEF";
        s.TextBegin();
        s.Raw("TRK");
        uint64_t v = mut.Next();
        for (int i = 0; i < 12; ++i, v >>= 4) s.out()->push_back(kHex[v & 15]);
        s.TextEnd();
      }
      if (mut.Below(3) == 0) s.Null(); else s.Date(6000 + id / 1000 + mut.Below(20));
      break;
    }
    case Table::kOrderLines: {
      s.Int(id / 3 + 1);
      const uint64_t product = fixed.Skewed(5000) + 1;
      s.Int(product);
      s.Int(mut.Skewed(20) + 1);
      s.Money(Hash(seed, product) % 50000 + 99);
      s.Money(mut.Below(4) == 0 ? mut.Below(30) * 100 : 0);
      s.TextBegin();
      Rng prod(Hash(seed, product, 7));
      s.Raw(Pick(prod, kAdjectives)); s.Raw(" "); s.Raw(Pick(prod, kAdjectives)); s.Raw(" ");
      s.Raw(Pick(prod, kProducts));
      s.Raw(", model ");
      s.Num(product);
      s.TextEnd();
      break;
    }
    case Table::kComments: {
      s.Int(fixed.Below(1 + id) + 1);
      s.TextBegin(); s.Raw(Pick(fixed, kFirstNames)); s.TextEnd();
      s.Timestamp(6000 + id / 200, fixed.Below(86400));
      s.TextBegin();
      const int sentences = static_cast<int>(1 + mut.Below(4));
      for (int i = 0; i < sentences; ++i) {
        if (i > 0) s.Raw(" ");
        const std::string_view w = PickSkewed(mut, kWords);
        s.out()->push_back(static_cast<char>(w[0] >= 'a' && w[0] <= 'z' ? w[0] - 32 : w[0]));
        s.Raw(w.substr(1));
        s.Raw(" ");
        Words(mut, s, static_cast<int>(4 + mut.Below(14)));
        s.Raw(".");
      }
      s.TextEnd();
      break;
    }
    case Table::kAccounts: {  // pgbench_accounts, with a realistic filler.
      s.Int((id - 1) / 100000 + 1);
      s.Int(0);
      s.TextBegin();
      std::string filler;
      SinkBase f(&filler);
      Rng r = fixed;
      while (filler.size() < 84) {
        if (!filler.empty()) filler.push_back(' ');
        f.Raw(PickSkewed(r, kWords));
      }
      filler.resize(84);
      s.Raw(filler);
      s.TextEnd();
      break;
    }
  }
  s.End();
}

// Which rows exist on a day, and at which version. Deterministic in
// (seed, table, id, day).
struct History {
  uint64_t seed = 1;
  double change = 0.01;          // Share of rows rewritten per day.
  double delete_rate = 0.00005;  // Share of rows deleted per day.

  bool Changed(Table t, uint64_t id, int day) const {
    return static_cast<double>(Hash(seed ^ 0xc4a9, static_cast<uint64_t>(t), id,
                                    static_cast<uint64_t>(day)) % 1000000) <
           change * 1e6;
  }
  // Days 2..day on which the row was rewritten.
  uint32_t Version(Table t, uint64_t id, int day) const {
    uint32_t v = 0;
    for (int d = 2; d <= day; ++d) v += Changed(t, id, d) ? 1 : 0;
    return v;
  }
  bool Deleted(Table t, uint64_t id, int day) const {
    for (int d = 2; d <= day; ++d)
      if (static_cast<double>(Hash(seed ^ 0xde1e7e, static_cast<uint64_t>(t), id,
                                   static_cast<uint64_t>(d)) % 1000000) < delete_rate * 1e6)
        return true;
    return false;
  }
  // Rows appended per day to a table that had `base` rows on day 1.
  static uint64_t InsertsPerDay(uint64_t base) { return std::max<uint64_t>(3, base / 10000); }
  // Ids 1..RowsOn(day) have been created by `day` (some may be deleted).
  static uint64_t RowsOn(uint64_t base, int day) {
    return base + InsertsPerDay(base) * static_cast<uint64_t>(std::max(0, day - 1));
  }
};

// Mean bytes of a COPY row of `t` around row `from` (rows from..from+1999).
inline double MeanCopyRowBytes(uint64_t seed, Table t, uint64_t from = 1) {
  std::string out;
  CopySink s(&out);
  constexpr uint64_t kRows = 2000;
  for (uint64_t id = from; id < from + kRows; ++id) Row(s, seed, t, id, 0);
  return static_cast<double>(out.size()) / kRows;
}

// How many rows of `t` make about `bytes` of COPY text. Rows grow with their
// id (more digits, later dates), so the mean is taken half-way.
inline uint64_t RowsFor(uint64_t seed, Table t, double bytes) {
  const double first = bytes / MeanCopyRowBytes(seed, t);
  const double mean = MeanCopyRowBytes(seed, t, static_cast<uint64_t>(first / 2) + 1);
  return std::max<uint64_t>(1, static_cast<uint64_t>(bytes / mean));
}

// Streams the rows of `t` on `day` into `out` in id order, calling
// flush(out) whenever it holds more than `flush_at` bytes.
template <typename Sink, typename Flush>
void Rows(Sink& s, std::string* out, const History& h, Table t, uint64_t base_rows, int day,
          size_t flush_at, const Flush& flush) {
  const uint64_t rows = History::RowsOn(base_rows, day);
  for (uint64_t id = 1; id <= rows; ++id) {
    if (h.Deleted(t, id, day)) continue;
    Row(s, h.seed, t, id, h.Version(t, id, day));
    if (out->size() >= flush_at) flush(out);
  }
}

// A PostgreSQL plain-format dump of the four tables: about `size` bytes on
// day 1. flush(out) receives the text in pieces of about `piece` bytes.
template <typename Flush>
void SqlDump(uint64_t size, int day, const History& h, size_t piece, const Flush& flush) {
  std::string out;
  out.reserve(piece + 4096);
  out.append(
      "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18\n"
      "-- Dumped by pg_dump version 15.18\n\nSET statement_timeout = 0;\n"
      "SET lock_timeout = 0;\nSET client_encoding = 'UTF8';\n"
      "SET standard_conforming_strings = on;\n"
      "SELECT pg_catalog.set_config('search_path', '', false);\n"
      "SET check_function_bodies = false;\nSET client_min_messages = warning;\n"
      "SET default_tablespace = '';\nSET default_table_access_method = heap;\n\n");
  for (Table t : kDumpTables) {
    const TableInfo& info = InfoOf(t);
    out.append("--\n-- Name: ").append(info.name).append("; Type: TABLE; Schema: public\n--\n\n");
    out.append("CREATE TABLE public.").append(info.name).append(" (\n    ");
    out.append(info.create).append("\n);\n\n");
  }
  for (Table t : kDumpTables) {
    const TableInfo& info = InfoOf(t);
    const uint64_t base = RowsFor(h.seed, t, static_cast<double>(size) * info.share);
    out.append("--\n-- Data for Name: ").append(info.name);
    out.append("; Type: TABLE DATA; Schema: public\n--\n\nCOPY public.").append(info.name);
    out.append(" (").append(info.columns).append(") FROM stdin;\n");
    CopySink s(&out);
    Rows(s, &out, h, t, base, day, piece, flush);
    out.append("\\.\n\n\n");
  }
  for (Table t : kDumpTables) {
    const std::string_view name = InfoOf(t).name;
    out.append("ALTER TABLE ONLY public.").append(name).append("\n    ADD CONSTRAINT ");
    out.append(name).append("_pkey PRIMARY KEY (id);\n\n");
  }
  out.append("--\n-- PostgreSQL database dump complete\n--\n\n");
  flush(&out);
}

// Exactly the first `bytes` bytes of the SQL dump of `day` (for tests).
inline std::string SqlDumpPrefix(size_t bytes, int day, uint64_t seed) {
  std::string text;
  History h{.seed = seed};
  SqlDump(bytes + bytes / 8, day, h, 1 << 20, [&](std::string* piece) {
    if (text.size() < bytes) text.append(*piece, 0, std::min(piece->size(), bytes - text.size()));
    piece->clear();
  });
  text.resize(bytes, '\n');
  return text;
}

}  // namespace snapfs::bench
