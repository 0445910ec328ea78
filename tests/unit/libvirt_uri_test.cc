// libvirt URI classification (config/libvirt_uri.h) and the refusal of a
// remote URI at configuration time (LoadEffectiveConfig, flags applied).
#include "exporter/config/libvirt_uri.h"

#include <gtest/gtest.h>

#include "exporter/app/app.h"

namespace vmtime {
namespace {

TEST(LibvirtUri, LocalForms) {
  for (const char* uri :
       {"qemu:///system", "qemu:///session", "test:///default", "qemu+unix:///system",
        "qemu+unix:///system?socket=/var/tmp/lab/libvirt-sock",
        "qemu+unix:///session?socket=/run/user/1000/libvirt/libvirt-sock", "lxc:///",
        "qemu:///system?mode=legacy"}) {
    const auto loc = ClassifyLibvirtUri(uri);
    EXPECT_FALSE(loc.remote) << uri << ": " << loc.reason;
    EXPECT_TRUE(loc.reason.empty()) << uri;
  }
}

TEST(LibvirtUri, RemoteForms) {
  struct Case {
    const char* uri;
    const char* reason_part;
  };
  for (const Case& c : {
           Case{"qemu+ssh://user@host/system?keyfile=/root/.ssh/id_ed25519", "transport 'ssh'"},
           Case{"qemu+ssh://host/system", "transport 'ssh'"},
           Case{"qemu+libssh2://user@host/system?known_hosts=/k", "transport 'libssh2'"},
           Case{"qemu+libssh://host/system", "transport 'libssh'"},
           Case{"qemu+tcp://10.0.0.7:16509/system", "transport 'tcp'"},
           Case{"qemu+tls://hv1.example.org/system", "transport 'tls'"},
           Case{"qemu+tls:///system", "transport 'tls'"},  // a network transport, even to here
           Case{"qemu+ext:///system?command=/usr/bin/tunnel", "transport 'ext'"},
           Case{"qemu://hv1.example.org/system", "host part 'hv1.example.org'"},
           Case{"qemu://user@hv1:16514/system", "host part 'user@hv1:16514'"},
           Case{"qemu+unix://hv1/system", "host part 'hv1'"},
           Case{"test://somehost/default", "host part 'somehost'"},
           Case{"qemu+foo:///system", "unknown transport 'foo'"},
           Case{"hv1", "may be an alias"},
           Case{"", "may be an alias"},
           Case{"://host/system", "may be an alias"},
       }) {
    const auto loc = ClassifyLibvirtUri(c.uri);
    EXPECT_TRUE(loc.remote) << c.uri;
    EXPECT_NE(loc.reason.find(c.reason_part), std::string::npos) << c.uri << ": " << loc.reason;
  }
}

TEST(LibvirtUri, CheckRefusesRemoteUnlessAllowed) {
  EXPECT_TRUE(CheckLibvirtUri("qemu:///system", false).ok());
  const Status st = CheckLibvirtUri("qemu+ssh://user@host/system", false);
  ASSERT_FALSE(st.ok());
  const std::string& m = st.message();
  EXPECT_NE(m.find("qemu+ssh://user@host/system"), std::string::npos) << m;
  EXPECT_NE(m.find("transport 'ssh'"), std::string::npos) << m;
  EXPECT_NE(m.find("this machine's clock"), std::string::npos) << m;
  EXPECT_NE(m.find("--libvirt.allow-remote"), std::string::npos) << m;
  EXPECT_NE(m.find("libvirt.allow_remote: true"), std::string::npos) << m;
  EXPECT_TRUE(CheckLibvirtUri("qemu+ssh://user@host/system", true).ok());
}

Flags ParsedFlags(std::vector<const char*> args) {
  args.insert(args.begin(), "vmtime_exporter");
  std::ostringstream out, err;
  auto outcome = ParseFlags(static_cast<int>(args.size()), args.data(), out, err);
  EXPECT_FALSE(outcome.exit_code.has_value()) << err.str();
  return outcome.flags;
}

TEST(LibvirtUri, EffectiveConfigRefusesARemoteFlagUriAndAcceptsTheOptIn) {
  auto refused = LoadEffectiveConfig(ParsedFlags({"--libvirt.uri", "qemu+tcp://hv1/system"}));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("is not local (transport 'tcp')"), std::string::npos)
      << refused.error().message;
  auto allowed = LoadEffectiveConfig(
      ParsedFlags({"--libvirt.uri", "qemu+tcp://hv1/system", "--libvirt.allow-remote"}));
  ASSERT_TRUE(allowed.ok()) << allowed.error().message;
  EXPECT_TRUE(allowed->libvirt.allow_remote);
  EXPECT_TRUE(LoadEffectiveConfig(ParsedFlags({})).ok()) << "the default URI is local";
}

TEST(LibvirtUri, ConfigKeyAllowRemote) {
  auto c = ParseConfig("libvirt:\n  uri: qemu+ssh://hv1/system\n  allow_remote: true\n", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->libvirt.allow_remote);
  EXPECT_TRUE(CheckLibvirtUri(c->libvirt.uri, c->libvirt.allow_remote).ok());
  auto bad = ParseConfig("libvirt:\n  allow_remote: maybe\n", "t.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("t.yaml:2:"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace vmtime
