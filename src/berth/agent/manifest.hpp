// What is persisted: paths relative to $HOME, each a directory or a file.
#pragma once

#include "agent/store.hpp"
#include "util/result.hpp"

#include <string>
#include <vector>

namespace berth {

enum class ItemKind { dir, file };

struct Item {
    std::string path; // relative to $HOME, normalised: ".cache/huggingface"
    ItemKind kind = ItemKind::dir;
};

struct Manifest {
    std::vector<Item> items;

    const Item *find(const std::string &path) const;
    // The persisted item that contains path (itself, a parent or a child), if any.
    const Item *overlapping(const std::string &path) const;
};

// fastai's set (paperspace-setup pre-run.sh) plus what it forgot: the Hugging Face cache and
// token, and .netrc (wandb, kaggle mirrors).
std::vector<Item> default_items();

// Reads <store>/.berth/manifest.json; an absent file is an empty manifest.
Result<Manifest> load_manifest(const Store &s);
Result<> save_manifest(const Store &s, const Manifest &m);

// Validates and normalises a user-given path into one relative to home: accepts "~/.x",
// "$HOME/.x" (already expanded by the shell), or ".x". Fails on paths outside home, home
// itself, or paths inside the store.
Result<std::string> normalise_item_path(const std::string &given, const std::filesystem::path &home,
                                        const Store &store);

const char *kind_name(ItemKind k);

} // namespace berth
