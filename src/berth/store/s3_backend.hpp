// A repository in an S3-compatible bucket (AWS, Backblaze B2, Cloudflare R2, Wasabi, MinIO):
// path-style requests signed with AWS Signature Version 4 by libcurl; packs above a part size
// go up as multipart uploads; 429, 5xx and network failures are retried with backoff.
//
// Credentials, as the AWS CLI finds them: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
// (/ AWS_SESSION_TOKEN), else the profile AWS_PROFILE (or "default") in
// ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE). Region: AWS_REGION, AWS_DEFAULT_REGION, the
// profile's region in ~/.aws/config (AWS_CONFIG_FILE), else us-east-1. AWS_CA_BUNDLE: the CAs to
// trust for a private endpoint.
#pragma once

#include "store/backend.hpp"
#include "store/location.hpp"

#include <memory>

namespace berth::store {

struct S3Credentials {
    std::string key, secret, token, region, ca_bundle;
};
// As the AWS CLI finds them; `profile` overrides AWS_PROFILE (and then the AWS_* keys are not
// used: a named profile is what was asked for).
Result<S3Credentials> s3_credentials(const std::string &profile = "");

Result<std::unique_ptr<Backend>> s3_backend(const RepoLocation &loc);
Result<std::unique_ptr<Backend>> s3_backend(const RepoLocation &loc, S3Credentials c);

// The parts of ListObjectsV2's XML answer berth uses (exposed for tests).
struct S3Listing {
    std::vector<ListedFile> files; // keys as given
    bool truncated = false;
    std::string next_token;
};
Result<S3Listing> parse_s3_listing(const std::string &xml);

} // namespace berth::store
