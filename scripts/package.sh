#!/usr/bin/env bash
# Builds the crust DEB and RPM from the release binaries and contrib/ into target/package/.
#
#   scripts/package.sh            # expects `make release` to have run (make package does)
#
# Both packages come from one staged tree (target/package/stage/) holding exactly the
# installed files, packed with dpkg-deb and rpmbuild: both work offline on Debian 12 and
# take seconds, where cargo-deb / cargo-generate-rpm would each be compiled from source by
# `cargo install` on every fresh CI machine. Man pages and completions come from the
# binary itself (`crust generate`, clap_mangen / clap_complete), so they match its flags.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/package
# Cargo honours CARGO_TARGET_DIR; so do we.
rel=${CARGO_TARGET_DIR:-target}/release
for bin in crust crust-monitor crust-pause; do
    [ -x "$rel/$bin" ] || { echo "package: $rel/$bin missing (run make release)" >&2; exit 1; }
done
for tool in dpkg-deb rpmbuild dpkg-shlibdeps strip gzip; do
    command -v "$tool" >/dev/null || { echo "package: $tool not found (run make test-deps)" >&2; exit 1; }
done

version=$("$rel/crust" version | awk 'NR == 1 { print $3 }')
deb_arch=$(dpkg --print-architecture)
rpm_arch=$(uname -m)
release=1

# The shipped /etc/crust/crust.toml must be what this binary prints (the unit test
# config::man::tests::contrib_default_config_is_current checks the same in `make test`).
if ! diff -u contrib/config/crust.toml <("$rel/crust" --config /dev/null --config-dir /nonexistent \
        --registries-conf /etc/crust/registries.conf config); then
    echo "package: contrib/config/crust.toml is stale: CRUST_BLESS=1 cargo test --lib config::man" >&2
    exit 1
fi

rm -rf "$out"
stage="$out/stage"
mkdir -p "$stage"

# install MODE SRC DST (DST relative to the stage root)
put() {
    install -D -m "$1" "$2" "$stage/$3"
}

# --- files common to both packages ---
for bin in crust crust-monitor crust-pause; do
    put 0755 "$rel/$bin" "usr/bin/$bin"
    strip --strip-debug "$stage/usr/bin/$bin"
done
put 0644 contrib/systemd/crust.service usr/lib/systemd/system/crust.service
put 0644 contrib/config/crust.toml etc/crust/crust.toml
put 0644 contrib/config/registries.conf etc/crust/registries.conf
mkdir -p "$stage/etc/crust/crust.conf.d"
put 0644 contrib/cni/10-crust-bridge.conflist usr/share/crust/cni/10-crust-bridge.conflist
put 0644 README.md usr/share/doc/crust/README.md

gen="$out/generated"
"$rel/crust" generate man "$gen/man" >/dev/null
"$rel/crust" generate completions "$gen/completions" >/dev/null
for page in "$gen"/man/*.[0-9]; do
    section=${page##*.}
    put 0644 "$page" "usr/share/man/man$section/$(basename "$page")"
    gzip -9n "$stage/usr/share/man/man$section/$(basename "$page")"
done
put 0644 "$gen/completions/crust.bash" usr/share/bash-completion/completions/crust
put 0644 "$gen/completions/crust.fish" usr/share/fish/vendor_completions.d/crust.fish

# --- DEB ---
debroot="$out/deb"
cp -a "$stage" "$debroot"
install -D -m 0644 "$gen/completions/_crust" "$debroot/usr/share/zsh/vendor-completions/_crust"
install -D -m 0644 contrib/packaging/default/crust "$debroot/etc/default/crust"
install -D -m 0644 contrib/packaging/deb/copyright "$debroot/usr/share/doc/crust/copyright"
mkdir -p "$debroot/DEBIAN"
cni_sha256=$(sha256sum <contrib/cni/10-crust-bridge.conflist | cut -d" " -f1)
for script in postinst prerm postrm; do
    sed "s/@CNI_SHA256@/$cni_sha256/" "contrib/packaging/deb/$script" >"$debroot/DEBIAN/$script"
    chmod 0755 "$debroot/DEBIAN/$script"
done
install -m 0644 contrib/packaging/deb/conffiles "$debroot/DEBIAN/conffiles"
# Shared-library dependencies of the binaries, as dpkg-shlibdeps computes them.
shl=$(mktemp -d)
trap 'rm -rf "$shl"' EXIT
mkdir -p "$shl/debian"
printf 'Source: crust\n\nPackage: crust\nArchitecture: any\n' >"$shl/debian/control"
abs_bins=$(for b in crust crust-monitor crust-pause; do echo "$PWD/$debroot/usr/bin/$b"; done)
# shellcheck disable=SC2086
shlibs=$(cd "$shl" && dpkg-shlibdeps -O $abs_bins 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$debroot" | cut -f1)
sed -e "s/@VERSION@/$version-$release/" -e "s/@ARCH@/$deb_arch/" \
    -e "s/@SHLIBS@/${shlibs:+$shlibs, }/" -e "s/@SIZE@/$size/" \
    contrib/packaging/deb/control.in >"$debroot/DEBIAN/control"
(cd "$debroot" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum >DEBIAN/md5sums)
deb="$out/crust_${version}-${release}_${deb_arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$debroot" "$deb" >/dev/null

# --- RPM ---
rpmroot="$out/rpm"
cp -a "$stage" "$rpmroot"
install -D -m 0644 "$gen/completions/_crust" "$rpmroot/usr/share/zsh/site-functions/_crust"
install -D -m 0644 contrib/packaging/default/crust "$rpmroot/etc/sysconfig/crust"
top="$PWD/$out/rpmbuild"
mkdir -p "$top"
rpmbuild -bb --quiet \
    --define "_topdir $top" \
    --define "_rpmdir $PWD/$out" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "crust_stage $PWD/$rpmroot" \
    --define "crust_version $version" \
    --define "crust_release $release" \
    --define "crust_cni_sha256 $cni_sha256" \
    --target "$rpm_arch" \
    contrib/packaging/rpm/crust.spec >/dev/null
rpm="$out/crust-${version}-${release}.${rpm_arch}.rpm"
[ -f "$rpm" ] || { echo "package: rpmbuild did not produce $rpm" >&2; exit 1; }

rm -rf "$top"
echo "$deb"
echo "$rpm"
