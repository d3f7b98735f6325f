#!/bin/sh
# One-shot (compose service blob-store-setup): the workers' bucket and a user that may use only it.
# Idempotent: a second `docker compose up` changes nothing. Run by minio/mc against the blob-store service.
set -eu
: "${BUCKET?}" "${WORKER_ACCESS_KEY_ID:?}" "${WORKER_SECRET_ACCESS_KEY:?}" "${MINIO_ROOT_PASSWORD:?}"
if [ -z "$BUCKET" ]; then
    echo "BLOB_STORE_S3_BUCKET is empty: workers use the shared volume; no bucket to create"
    exit 0
fi
mc alias set store http://blob-store:9000 blob-admin "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "store/$BUCKET"
cat > /tmp/worker-policy.json <<POLICY
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": ["arn:aws:s3:::$BUCKET/*"]},
  {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": ["arn:aws:s3:::$BUCKET"]}
]}
POLICY
mc admin policy create store agent-worker /tmp/worker-policy.json
mc admin user add store "$WORKER_ACCESS_KEY_ID" "$WORKER_SECRET_ACCESS_KEY"
mc admin policy attach store agent-worker --user "$WORKER_ACCESS_KEY_ID" 2>/dev/null || true  # already attached
echo "bucket $BUCKET ready for $WORKER_ACCESS_KEY_ID"
