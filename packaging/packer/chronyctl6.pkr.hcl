# Packer example: bake chronyctl6 into an Amazon Linux 2023 AMI (the provisioners are the part to
# copy into your own template; they work the same on RHEL-family and Debian/Ubuntu sources).
# Amazon Linux 2023 packages neither typer nor ntplib for its Python: it takes the self-contained
# RPM, built for the AMI's architecture (x86_64 here, as source_ami_filter and instance_type say):
#   packaging/fetch-wheels /tmp/wheels x86_64
#   CHRONYCTL6_WHEELHOUSE=/tmp/wheels packaging/build-rpm dist/ --define 'python3_pkgversion 3.11'
#       (on an AL2023 build host; on Debian add --nodeps)  -> dist/chronyctl6-0.1.0-1.x86_64.rpm
#   packer init packaging/packer      (Packer 1.7+: the amazon plugin named in plugins.pkr.hcl)
#   packer build -var package=dist/chronyctl6-0.1.0-1.x86_64.rpm packaging/packer
#   (Packer 1.6 bundles the builder and refuses plugins.pkr.hcl: build this file alone.)
# (Debian 12 sources take dist/chronyctl6_0.1.0_all.deb; Ubuntu 22.04 the build-deb --jammy one.)
# The image chooses its Time Sync endpoint on every launch (chronyctl6-boot.service), so one AMI
# is right in dual-stack, IPv6-only and IPv4-only subnets.

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "package" {
  type        = string
  description = "Path of the chronyctl6 .rpm (or .deb) built by packaging/build-rpm (build-deb)."
  validation {
    condition     = var.package != "" && regex_replace(var.package, "^(.*/)?chronyctl6[-_][A-Za-z0-9_.+~-]+[.](rpm|deb)$", "") == ""
    error_message = "The package must be a chronyctl6 .rpm or .deb file built by packaging/build-rpm or build-deb."
  }
}

locals {
  # AMI names may not contain ':'.
  stamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "al2023" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = "ec2-user"
  ami_name      = "al2023-chronyctl6-${local.stamp}"
  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-x86_64"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }
}

build {
  sources = ["source.amazon-ebs.al2023"]

  provisioner "file" {
    source      = var.package
    destination = "/tmp/chronyctl6.pkg"
  }

  provisioner "shell" {
    execute_command = "sudo -S env {{ .Vars }} bash -euo pipefail '{{ .Path }}'"
    inline = [
      "if command -v dnf >/dev/null; then mv /tmp/chronyctl6.pkg /tmp/chronyctl6.rpm; dnf install -y /tmp/chronyctl6.rpm; else mv /tmp/chronyctl6.pkg /tmp/chronyctl6.deb; DEBIAN_FRONTEND=noninteractive apt-get install -y /tmp/chronyctl6.deb; fi",
      # Pin "choose the endpoint at every boot" in the image's settings (prepended: a top-level
      # key after a [table] would land inside it), so any later apply keeps that choice.
      "mkdir -p /etc/chronyctl6",
      "grep -qs '^at_boot' /etc/chronyctl6/settings.toml || { echo 'at_boot = true'; cat /etc/chronyctl6/settings.toml 2>/dev/null || true; } > /etc/chronyctl6/settings.new",
      "if [ -e /etc/chronyctl6/settings.new ]; then chmod 0644 /etc/chronyctl6/settings.new && mv /etc/chronyctl6/settings.new /etc/chronyctl6/settings.toml; fi",
      # On the build instance: validate, write, restart chronyd, and fail the build unless
      # chronyd selects Time Sync within 60 s (the change is rolled back then).
      "chronyctl6 apply --wait 60 --diff",
      "systemctl enable chronyctl6-boot.service",
      "if [ -d /var/lib/prometheus/node-exporter ]; then systemctl enable chronyctl6-check.timer; fi",
      # Nothing left to change: the image is baked as applied (apply --check: 0 as desired,
      # 5 an apply would change something; any non-zero status fails the build).
      "chronyctl6 apply --check",
    ]
  }
}
