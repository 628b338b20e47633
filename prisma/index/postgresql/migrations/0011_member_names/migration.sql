-- Member names (issue 18): the `entries` filter's author by name. Written by hand to match the
-- Prisma schema (what `prisma migrate diff` prints for the table), plus the back-fill.

-- CreateTable
CREATE TABLE "MemberName" (
    "name" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "blockHash" TEXT NOT NULL,

    CONSTRAINT "MemberName_pkey" PRIMARY KEY ("name","key","blockHash")
);

-- CreateIndex
CREATE INDEX "MemberName_key_idx" ON "MemberName"("key");

-- Back-fill 1: the genesis roster of a roster network, from the config the collector indexed.
INSERT INTO "MemberName" ("name", "key", "blockHash")
SELECT m->>'name', lower(m->>'publicKey'), ''
FROM "NetworkConfig" c, jsonb_array_elements(c."config"::jsonb->'members') m
WHERE c."config"::jsonb->>'membership' = 'roster'
  AND jsonb_typeof(m->'name') = 'string' AND jsonb_typeof(m->'publicKey') = 'string'
ON CONFLICT DO NOTHING;

-- Back-fill 2: the certificates of indexed `member.add` changes (validated when their block was
-- indexed). Certificate bytes (node/membership/certificate.ts): tag 0x10, version 1, chain id
-- (32), subject key (32), name length (one byte: names are at most 64 bytes), name. In hex,
-- 1-based: tag at 1, version at 3, subject at 69, length at 133, name from 135.
INSERT INTO "MemberName" ("name", "key", "blockHash")
SELECT convert_from(decode(substr(v, 135, 2 * get_byte(decode(substr(v, 133, 2), 'hex'), 0)), 'hex'), 'UTF8'),
       substr(v, 69, 64), bh
FROM (
    SELECT ch->>1 AS v, e."blockHash" AS bh
    FROM "Entry" e, jsonb_array_elements(e."payload"::jsonb->'changes') ch
    WHERE e."kind" = 'config' AND ch->>0 = 'member.add'
) changes
WHERE substr(v, 1, 4) = '1001' AND length(v) > 134
  AND NOT EXISTS (SELECT 1 FROM "NetworkConfig" c WHERE c."config"::jsonb->>'membership' = 'open')
ON CONFLICT DO NOTHING;
