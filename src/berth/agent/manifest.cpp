#include "agent/manifest.hpp"

#include "util/fs.hpp"

#include <nlohmann/json.hpp>

namespace berth {

const char *kind_name(ItemKind k) {
    return k == ItemKind::dir ? "dir" : "file";
}

std::vector<Item> default_items() {
    std::vector<Item> items;
    for (const char *d : {".local", ".ssh", ".config", ".ipython", ".fastai", ".jupyter", ".conda",
                          ".kaggle", ".cache/huggingface"})
        items.push_back({d, ItemKind::dir});
    for (const char *f : {".git-credentials", ".gitconfig", ".bash_history", ".netrc"})
        items.push_back({f, ItemKind::file});
    return items;
}

const Item *Manifest::find(const std::string &path) const {
    for (const auto &i : items)
        if (i.path == path) return &i;
    return nullptr;
}

const Item *Manifest::overlapping(const std::string &path) const {
    for (const auto &i : items) {
        if (i.path == path) return &i;
        auto prefix_of = [](const std::string &a, const std::string &b) {
            return b.size() > a.size() && b.compare(0, a.size(), a) == 0 && b[a.size()] == '/';
        };
        if (prefix_of(i.path, path) || prefix_of(path, i.path)) return &i;
    }
    return nullptr;
}

Result<Manifest> load_manifest(const Store &s) {
    Manifest m;
    if (!std::filesystem::exists(s.manifest())) return m;
    auto text = fs::read_file(s.manifest());
    if (!text) return tl::unexpected(text.error());
    try {
        auto j = nlohmann::json::parse(*text);
        for (const auto &e : j.at("items")) {
            Item it{e.at("path").get<std::string>(),
                    e.at("kind").get<std::string>() == "file" ? ItemKind::file : ItemKind::dir};
            m.items.push_back(std::move(it));
        }
    } catch (const std::exception &e) {
        return fail("manifest " + s.manifest().string() + " is damaged: " + e.what(),
                    "restore it from a backup or run `berth persist init` to rewrite it");
    }
    return m;
}

Result<> save_manifest(const Store &s, const Manifest &m) {
    nlohmann::json j;
    j["version"] = 1;
    j["items"] = nlohmann::json::array();
    for (const auto &i : m.items)
        j["items"].push_back({{"path", i.path}, {"kind", kind_name(i.kind)}});
    return fs::write_file_atomic(s.manifest(), j.dump(2) + "\n", 0644);
}

Result<std::string> normalise_item_path(const std::string &given, const std::filesystem::path &home,
                                        const Store &store) {
    if (given.empty()) return fail("empty path", "name a path under your home directory", 2);
    std::filesystem::path p = given;
    if (given == "~" || given.rfind("~/", 0) == 0)
        p = home / given.substr(given.size() > 1 ? 2 : 1);
    else if (p.is_relative())
        p = home / p;
    p = p.lexically_normal();
    if (p.has_filename() == false) p = p.parent_path();
    auto h = fs::absolute_normal(home);
    if (!fs::is_within(p, h) || p == h)
        return fail(given + " is outside your home directory (" + h.string() + ")",
                    "berth persists paths under $HOME, like ~/.local", 2);
    if (fs::is_within(p, store.root) || fs::is_within(store.root, p))
        return fail(given + " overlaps the store " + store.root.string(),
                    "persist a path outside the store", 2);
    return p.lexically_relative(h).string();
}

} // namespace berth
