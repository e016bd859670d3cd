"""The private MariaDB instance of the local stack.

Everything lives under the state directory: data directory, socket, pid file and logs, and the
generated root password (mode 0600). The server binds to the configured host only and ignores
every system option file (``--no-defaults``), so a developer's own MariaDB, its my.cnf and port
3306 are never touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time

import pymysql

from matchstream.config import Config
from matchstream.stack.errors import ComponentStartError, MissingBinaryError
from matchstream.stack.ports import port_answers
from matchstream.stack.process import ManagedProcess

__all__ = ["MariaDB", "mask"]

INSTALL_HINT = "sudo apt-get install mariadb-server   (or run ./setup.sh, which does it)"
# Where Debian puts the server; it is not on a normal user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin")
# The accounts mariadb-install-db creates for root; all get the generated password so that
# TCP clients (127.0.0.1, ::1) and socket clients (localhost) agree.
ROOT_HOSTS = ("localhost", "127.0.0.1", "::1")
ACCESS_DENIED = 1045


def mask(secret: str) -> str:
    """Show just enough of a secret to tell two apart, never the whole of it."""
    return secret[:2] + "*" * 8 if len(secret) > 4 else "*" * 8


def _which(name: str, bin_dir: str = "") -> str | None:
    if bin_dir:
        candidate = os.path.join(bin_dir, name)
        return candidate if os.access(candidate, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    for folder in SBIN_DIRS:
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class MariaDB:
    name = "mariadb"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.process = ManagedProcess(self.name, config.run_dir, config.log_dir)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.db_port}"

    def server_binary(self) -> str:
        where = self.config.db_bin_dir
        found = _which("mariadbd", where) or _which("mysqld", where)
        if not found:
            raise MissingBinaryError(binary="mariadbd", install_hint=INSTALL_HINT)
        return found

    def install_binary(self) -> str:
        where = self.config.db_bin_dir
        found = _which("mariadb-install-db", where) or _which("mysql_install_db", where)
        if not found:
            raise MissingBinaryError(binary="mariadb-install-db", install_hint=INSTALL_HINT)
        return found

    def _user_args(self) -> list[str]:
        # mariadbd refuses to run as root unless told to; for anyone else --user is not needed.
        return ["--user=root"] if os.geteuid() == 0 else []

    def initialise(self) -> bool:
        """1. Create the data directory once. Returns True when it was created now."""
        data = self.config.db_dir
        if (data / "mysql").is_dir():
            return False
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            self.install_binary(),
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *self._user_args(),
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)  # a half-made data directory would stick
            raise ComponentStartError(
                component=self.name,
                reason="mariadb-install-db failed",
                log_path=None,
                log_tail=(result.stdout + result.stderr)[-2000:],
            )
        return True

    def argv(self) -> list[str]:
        c = self.config
        return [
            self.server_binary(),
            "--no-defaults",
            f"--datadir={c.db_dir}",
            f"--socket={c.db_socket}",
            f"--port={c.db_port}",
            f"--bind-address={c.host}",
            f"--pid-file={c.run_dir / 'mariadbd.pid'}",
            "--skip-name-resolve",
            # The pipeline engine loads batches with LOAD DATA LOCAL INFILE.
            "--local-infile=1",
            # A developer machine, not a server: keep memory small and start fast.
            "--innodb-buffer-pool-size=256M",
            "--innodb-log-file-size=128M",
            "--max-connections=200",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            # Transaction-consistent reads of cursors and rows, as SingleStore gives its readers.
            "--transaction-isolation=READ-COMMITTED",
            *self._user_args(),
        ]

    def start(self) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        self.process.start(self.argv())

    def _socket_connect(self, password: str) -> pymysql.Connection:
        return pymysql.connect(
            unix_socket=str(self.config.db_socket),
            user="root",
            password=password,
            connect_timeout=2,
        )

    def _password_rejected(self) -> ComponentStartError:
        return ComponentStartError(
            component=self.name,
            reason=(
                f"the server in {self.config.db_dir} rejects the root password in "
                f"{self.config.db_password_file} (was the file lost or replaced?): restore it, "
                f"or remove {self.config.db_dir} to start with an empty database"
            ),
            log_path=None,
        )

    def wait_ready(self) -> None:
        """2. Wait until the socket accepts a connection (with or without the password).

        A server that answers but refuses every password we know will not change its mind:
        stop it and say so, instead of waiting for the timeout.
        """
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if self.config.db_socket.exists():
                refused = 0
                candidates = self._candidate_passwords()
                for password in candidates:
                    try:
                        self._socket_connect(password).close()
                        return
                    except pymysql.err.OperationalError as exc:
                        refused += exc.args[:1] == (ACCESS_DENIED,)
                if refused == len(candidates):
                    self.process.stop()
                    raise self._password_rejected()
            if self.process.exited_early():
                break
            time.sleep(0.2)
        raise ComponentStartError(
            component=self.name,
            reason=f"no answer on {self.config.db_socket}",
            log_path=self.process.log_file,
            log_tail=self.process.log_tail(),
        )

    def _candidate_passwords(self) -> list[str]:
        stored = self.config.db_password_file
        return [stored.read_text().strip(), ""] if stored.exists() else [""]

    def secure(self) -> None:
        """3. Make sure root has the generated password (set once, on the first start).

        The password file is written (0600) before the server is told, so a crash in between
        leaves a file that the next `up` finds and applies again instead of a lost password.
        """
        pw_file = self.config.db_password_file
        if not pw_file.exists():
            pw_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24) + "\n")
        password = pw_file.read_text().strip()
        try:
            self._socket_connect(password).close()
            return  # already applied
        except pymysql.err.OperationalError:
            pass
        try:
            conn = self._socket_connect("")
        except pymysql.err.OperationalError as exc:
            if exc.args[:1] == (ACCESS_DENIED,):
                raise self._password_rejected() from exc
            raise
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT `Host` FROM mysql.user WHERE `User` = 'root'")
                hosts = {row[0] for row in cur.fetchall()}
                for host in ROOT_HOSTS:
                    if host not in hosts:
                        cur.execute("CREATE USER 'root'@%s IDENTIFIED BY %s", (host, password))
                        cur.execute(
                            "GRANT ALL PRIVILEGES ON *.* TO 'root'@%s WITH GRANT OPTION", (host,)
                        )
                    else:
                        cur.execute("ALTER USER 'root'@%s IDENTIFIED BY %s", (host, password))
                # Accounts for the machine's host name are useless with --skip-name-resolve and
                # would keep an empty password.
                for host in hosts - set(ROOT_HOSTS):
                    cur.execute("DROP USER 'root'@%s", (host,))
                cur.execute("FLUSH PRIVILEGES")
        finally:
            conn.close()

    def answers(self) -> bool:
        """True when ``SELECT 1`` succeeds over TCP with the generated password."""
        if not port_answers(self.config.host, self.config.db_port):
            return False
        try:
            conn = pymysql.connect(
                host=self.config.host,
                port=self.config.db_port,
                user=self.config.db_user,
                password=self.config.db_password(),
                connect_timeout=2,
            )
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                return cur.fetchone() == (1,)
        finally:
            conn.close()

    def write_client_file(self) -> None:
        """4. A mysql option file (mode 0600) with address, user and password: the client reads
        the password from it, so it never shows in a command line (``ps``) or shell history."""
        c = self.config
        target = c.db_client_file
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(
                "[client]\n"
                f"host={c.host}\nport={c.db_port}\nuser={c.db_user}\n"
                f"password={c.db_password()}\n"
            )
        os.replace(tmp, target)

    def connect_hint(self) -> str:
        return f"mysql --defaults-extra-file={self.config.db_client_file}"
