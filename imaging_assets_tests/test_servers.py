"""The test servers start even when a port they were given is taken before they bind it (CI once
lost every S3 test of a worker to "bind: address already in use" on SeaweedFS's S3 port)."""

from __future__ import annotations

import socket

from imaging_assets_tests.servers import S3Server


def test_seaweedfs_starts_on_new_ports_when_its_s3_port_was_taken(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = S3Server(tmp_path / "s3")
        server.ports["s3.port"] = taken  # what free_port handed out, taken in the meantime
        server.start()
        try:
            assert server.ports["s3.port"] != taken
            client = server.boto3_client()
            client.create_bucket(Bucket="after-a-retry")
            client.put_object(Bucket="after-a-retry", Key="k", Body=b"served")
            assert client.get_object(Bucket="after-a-retry", Key="k")["Body"].read() == b"served"
            assert "port" in server.log_tail(400)  # the first attempt's refusal, kept in the log
        finally:
            server.stop()


def test_postgres_starts_on_a_new_port_when_its_port_was_taken():
    from imaging_assets_tests.deployment.postgres import PostgresServer

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = PostgresServer()
        server.port = taken  # what free_port handed out, taken in the meantime
        with server:
            assert server.port != taken
            with server.connect() as connection, connection.cursor() as cursor:
                cursor.execute("select 1")
                assert cursor.fetchone() == (1,)
