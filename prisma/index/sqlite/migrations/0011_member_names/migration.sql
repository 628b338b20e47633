-- Member names (issue 18): the `entries` filter's author by name. Written by hand to match the
-- Prisma schema (what `npm run db:index:diff` prints for the table), plus the back-fill.

-- CreateTable
CREATE TABLE "MemberName" (
    "name" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "blockHash" TEXT NOT NULL,

    PRIMARY KEY ("name", "key", "blockHash")
);

-- CreateIndex
CREATE INDEX "MemberName_key_idx" ON "MemberName"("key");

-- Back-fill 1: the genesis roster of a roster network, from the config the collector indexed.
INSERT OR IGNORE INTO "MemberName" ("name", "key", "blockHash")
SELECT json_extract(m.value, '$.name'), lower(json_extract(m.value, '$.publicKey')), ''
FROM "NetworkConfig" c, json_each(json_extract(c."config", '$.members')) m
WHERE json_valid(c."config") AND json_extract(c."config", '$.membership') = 'roster'
  AND json_type(m.value, '$.name') = 'text' AND json_type(m.value, '$.publicKey') = 'text';

-- Back-fill 2: the certificates of indexed `member.add` changes (validated when their block was
-- indexed). Certificate bytes (node/membership/certificate.ts): tag 0x10, version 1, chain id
-- (32), subject key (32), name length (one byte: names are at most 64 bytes), name. In hex,
-- 1-based: tag at 1, version at 3, subject at 69, length at 133, name from 135.
INSERT OR IGNORE INTO "MemberName" ("name", "key", "blockHash")
SELECT CAST(unhex(substr(v, 135, 2 * unicode(CAST(unhex(substr(v, 133, 2)) AS TEXT)))) AS TEXT),
       substr(v, 69, 64), bh
FROM (
    SELECT json_extract(ch.value, '$[1]') AS v, e."blockHash" AS bh
    FROM "Entry" e, json_each(json_extract(e."payload", '$.changes')) ch
    WHERE e."kind" = 'config' AND json_valid(e."payload")
      AND json_extract(ch.value, '$[0]') = 'member.add'
)
WHERE substr(v, 1, 4) = '1001' AND length(v) > 134
  AND NOT EXISTS (SELECT 1 FROM "NetworkConfig" c
                  WHERE json_valid(c."config") AND json_extract(c."config", '$.membership') = 'open');
