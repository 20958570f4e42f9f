# The daily mmdeb autorebuild, for hosts without systemd; where systemd runs,
# mmdeb-autorebuild.timer does it and this line does nothing.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

23 4 * * * root [ -d /run/systemd/system ] || [ ! -x /usr/bin/mmdeb ] || /usr/bin/mmdeb autorebuild
