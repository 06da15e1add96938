# The plugins the template in this directory needs. Packer 1.7 and later install them with
# `packer init packaging/packer` (since 1.10 the Amazon builder ships only as this plugin).
# Packer 1.6 (Debian 12's) bundles the builder and does not know this block: there, build the
# template file alone (`packer build -var package=... packaging/packer/chronyctl6.pkr.hcl`).
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0, < 2.0.0"
    }
  }
}
